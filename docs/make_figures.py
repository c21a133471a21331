"""Draw the user guide's figure with sk_crust itself (called by ``conf.py`` at build time).

Run on its own: ``python docs/make_figures.py [folder]`` (default ``docs/generated``).
"""

from __future__ import annotations

import os
import sys

import numpy as np


def toy_gradients(seed: int = 0):
    """Per-example gradients of one class: a clean bulk and scattered mislabelled points."""
    rng = np.random.default_rng(seed)
    clean = rng.normal(0.0, 0.35, size=(140, 2))
    # Mislabelled examples: their gradient points towards their true class, in several directions.
    angles = rng.choice(np.linspace(0, 2 * np.pi, 5, endpoint=False), size=60)
    wrong = np.c_[np.cos(angles), np.sin(angles)] * 2.2 + rng.normal(0, 0.3, size=(60, 2))
    G = np.vstack([clean, wrong])
    is_wrong = np.r_[np.zeros(140, bool), np.ones(60, bool)]
    return G, is_wrong


def draw(path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sk_crust import CrustSelector

    G, is_wrong = toy_gradients()
    y = np.zeros(len(G), dtype=int)
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharex=True, sharey=True)
    for ax, optimizer, title in zip(
            axes, ["lazy", "centrality"],
            ["exact facility location (preset 'paper')", "centrality (default preset)"]):
        sel = CrustSelector(k=0.3, optimizer=optimizer).fit(G, y)
        chosen = np.zeros(len(G), bool)
        chosen[sel.indices_] = True
        ax.scatter(*G[~is_wrong].T, s=12, c="#4c72b0", alpha=0.5, label="label right")
        ax.scatter(*G[is_wrong].T, s=22, c="#c44e52", marker="x", label="label wrong")
        ax.scatter(*G[chosen].T, s=70, facecolors="none", edgecolors="black", linewidths=1.0,
                   label="selected (coreset)")
        clean = 1 - is_wrong[chosen].mean()
        ax.set_title(f"{title}\n{chosen.sum()} selected, {clean:.0%} with the right label",
                     fontsize=9)
        ax.set_xlabel("gradient feature 1")
        ax.set_aspect("equal")
    axes[0].set_ylabel("gradient feature 2")
    axes[1].legend(loc="lower right", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    # No timestamps in the file: the same input draws the same bytes.
    fig.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(fig)


def main(folder: str | None = None) -> None:
    folder = folder or os.path.join(os.path.dirname(os.path.abspath(__file__)), "generated")
    os.makedirs(folder, exist_ok=True)
    draw(os.path.join(folder, "selection.png"))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
