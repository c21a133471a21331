"""Demo: CRUST against plain training on digits with noisy labels (``make demo``).

Run ``python -m sk_crust.demo [--noise 0.5] [--epochs 60] [--seed 0]``. On scikit-learn's digits
(bundled, no download), standardised, split 70/30 (stratified), half of the training labels are
replaced by a wrong class. The same MLP is trained for the same number of epochs with plain skorch
and with :class:`~sk_crust.CrustClassifier` (its default preset and the ``"paper"`` and
``"official"`` presets), and the table shows the accuracy on the clean test labels, how clean the
training examples of the last epoch were, and the wall time. It takes a few seconds on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import NamedTuple

import numpy as np


class DemoResult(NamedTuple):
    """One row of the demo's table."""

    model: str
    test_accuracy: float
    clean_fraction: float  # of the examples trained on in the last epoch
    weighted_clean_fraction: float
    seconds: float


class _Progress:
    """A one-line epoch counter on terminals, silence elsewhere (CI logs stay short)."""

    def __init__(self, stream=sys.stdout):
        self.stream = stream
        self.live = bool(getattr(stream, "isatty", lambda: False)())

    def callback(self, name: str, epochs: int):
        from skorch.callbacks import Callback

        progress = self

        class EpochCounter(Callback):
            def on_epoch_end(self, net, **kwargs):
                if progress.live:
                    progress.stream.write(f"\r  training {name}: epoch {len(net.history)}/"
                                          f"{epochs}")
                    progress.stream.flush()

        return EpochCounter()

    def done(self, row: DemoResult) -> None:
        clear = "\r" + " " * 60 + "\r" if self.live else ""
        self.stream.write(f"{clear}  trained {row.model} in {row.seconds:.1f} s\n")
        self.stream.flush()


def _data(noise: float, seed: int):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from .noise import add_label_noise

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=seed)
    scaler = StandardScaler().fit(X_train)
    X_train = scaler.transform(X_train).astype(np.float32)
    X_test = scaler.transform(X_test).astype(np.float32)
    y_noisy = (add_label_noise(y_train, noise, random_state=seed)[0] if noise > 0
               else y_train.copy())
    return X_train, X_test, y_train, y_test, np.asarray(y_noisy)


def run(noise: float = 0.5, epochs: int = 60, seed: int = 0, *,
        presets: tuple[str, ...] = ("default", "paper", "official"),
        progress: _Progress | None = None) -> list[DemoResult]:
    """Train plain skorch and CrustClassifier presets on noisy digits; return the table rows.

    Parameters
    ----------
    noise : float, default=0.5
        Fraction of training labels flipped to another class (symmetric noise).
    epochs : int, default=60
        Epochs for every model.
    seed : int, default=0
        Seeds the split, the noise and the models.
    presets : tuple of str, default=("default", "paper", "official")
        CrustClassifier presets to train.
    progress : _Progress, default=None
        Where to report progress (nothing when None).

    Returns
    -------
    rows : list of DemoResult

    Examples
    --------
    >>> from sk_crust.demo import run
    >>> rows = run(epochs=3, presets=("default",))
    >>> [row.model for row in rows]
    ['plain skorch', 'CRUST default']
    """
    import torch
    from skorch import NeuralNetClassifier

    from ._classifier import CoresetCleanFraction, CrustClassifier
    from .modules import MLP

    X_train, X_test, y_train, y_test, y_noisy = _data(noise, seed)
    shared = dict(optimizer=torch.optim.Adam, lr=1e-3, max_epochs=epochs, batch_size=128,
                  train_split=None, verbose=0)
    rows = []

    def callbacks(name):
        return [] if progress is None else [progress.callback(name, epochs)]

    torch.manual_seed(seed)
    plain = NeuralNetClassifier(
        MLP, module__n_features=X_train.shape[1], module__n_classes=10,
        criterion=torch.nn.CrossEntropyLoss, iterator_train__shuffle=True,
        callbacks=callbacks("plain skorch"), **shared)
    start = time.perf_counter()
    plain.fit(X_train, y_noisy.astype(np.int64))
    clean = float(np.mean(y_noisy == y_train))
    rows.append(DemoResult("plain skorch", float(np.mean(plain.predict(X_test) == y_test)),
                           clean, clean, time.perf_counter() - start))
    if progress is not None:
        progress.done(rows[-1])

    for preset in presets:
        name = f"CRUST {preset}"
        net = CrustClassifier(
            "mlp", preset=preset, random_state=seed,
            callbacks=[CoresetCleanFraction(y_train), *callbacks(name)], **shared)
        start = time.perf_counter()
        net.fit(X_train, y_noisy)
        seconds = time.perf_counter() - start
        rows.append(DemoResult(name, float(np.mean(net.predict(X_test) == y_test)),
                               float(net.history[-1, "coreset_clean_fraction"]),
                               float(net.history[-1, "coreset_weighted_clean_fraction"]),
                               seconds))
        if progress is not None:
            progress.done(rows[-1])
    return rows


def format_table(rows: list[DemoResult]) -> str:
    """The demo's results as a plain-text table."""
    header = (f"{'model':<16} {'clean test acc':>14} {'train clean frac':>16} "
              f"{'weighted':>9} {'fit time':>9}")
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(f"{row.model:<16} {row.test_accuracy:>14.3f} {row.clean_fraction:>16.3f} "
                     f"{row.weighted_clean_fraction:>9.3f} {row.seconds:>8.1f}s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[DemoResult]:
    """Command-line entry point: parse flags, run the demo, print the table."""
    parser = argparse.ArgumentParser(
        prog="python -m sk_crust.demo",
        description="CRUST vs plain training on scikit-learn's digits with noisy labels.")
    parser.add_argument("--noise", type=float, default=0.5,
                        help="fraction of training labels flipped (default: 0.5)")
    parser.add_argument("--epochs", type=int, default=60, help="epochs per model (default: 60)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch/BLAS threads (default: 1, the fastest for this small MLP)")
    args = parser.parse_args(argv)
    if not 0 <= args.noise < 1:
        parser.error(f"--noise={args.noise} is not valid: pass a fraction in [0, 1)")
    if args.epochs < 1:
        parser.error(f"--epochs={args.epochs} is not valid: pass an int >= 1")

    import torch
    from threadpoolctl import threadpool_limits

    # Tiny matrices: extra threads only add synchronisation (and torch's OpenMP workers and
    # NumPy's BLAS workers fight over the same cores), so one thread each is the fastest.
    torch.set_num_threads(args.threads)
    print(f"sk_crust demo: digits, 70/30 split, {args.noise:.0%} symmetric label noise on the "
          f"training labels, MLP 64-256-10, Adam lr=1e-3, {args.epochs} epochs, seed {args.seed}")
    start = time.perf_counter()
    with threadpool_limits(args.threads, user_api="blas"):
        rows = run(args.noise, args.epochs, args.seed, progress=_Progress())
    print()
    print(format_table(rows))
    print(f"\n'train clean frac': fraction of the last epoch's training examples whose label is "
          f"right (for CRUST: its coreset).\nTotal {time.perf_counter() - start:.1f} s.")
    return rows


if __name__ == "__main__":  # pragma: no cover
    main()
