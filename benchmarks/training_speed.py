"""Training-loop speed: CrustClassifier against skorch's own NeuralNetClassifier, side by side.

Same module, optimizer (Adam, lr 1e-3), batch size (128), epochs and validation split (skorch's
default 5-fold stratified ``ValidSplit``) for every method; the methods alternate within each
repeat, so a noisy machine slows them alike, and the table reports medians and ratios:

- ``skorch``: ``skorch.NeuralNetClassifier`` with the same module, ``CrossEntropyLoss`` and
  ``iterator_train__shuffle=True``; the ratios are to this one;
- ``skorch_fused``: the same with ``optimizer__fused=True``, the torch kernel that
  ``CrustClassifier`` turns on by default for Adam: what part of the gap is that kernel alone;
- ``crust``: ``CrustClassifier`` with its defaults (``coreset_size="auto"``, 5 warm-up epochs,
  the examples outside the coreset still trained at 0.3, so every epoch trains on all rows);
- ``crust_drop``: the same with ``unselected_weight=0, noisy_criterion="keep"`` (the former
  default: after warm-up only the coreset trains), what issue 14's "trains on half" measures;
- ``crust_plain``: ``CrustClassifier(warmup_epochs=max_epochs)``, i.e. plain training through
  sk_crust's data path (no selection): what the data path alone is worth.

Each CRUST epoch is broken down into the gradient-feature pass, the selection, the training
batches and the validation pass (from the history's ``feature_seconds``/``selection_seconds`` and a
callback that stamps the phases). Cases:

- ``tabular``: 30,000 x 64 float32 training rows, 10 classes (``make_classification``), 50%
  symmetric noise; ``MLP`` with one hidden layer of 256;
- ``fashion``: Fashion-MNIST (Debian ``dataset-fashion-mnist``), ``--fashion-n`` training images
  (default: all 60,000), 50% symmetric noise; ``SmallCNN``;
- ``digits``: scikit-learn's digits (1,257 training rows of 64 pixels scaled to [0, 1], 10
  classes), 50% symmetric noise; the same MLP. A small set, as most of the noise panel's: each
  epoch is a few batches, so what every epoch costs besides them (the selection's set-up, the
  feature pass) weighs most here.

Examples
--------
::

    python benchmarks/training_speed.py --quick              # tabular, 8 epochs, 2 repeats
    python benchmarks/training_speed.py --cases tabular      # 20 epochs, median of 3
    python benchmarks/training_speed.py --cases fashion --repeats 1
    python benchmarks/training_speed.py --cases digits --repeats 5
    python benchmarks/training_speed.py --device cuda        # on a machine with a GPU
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from _report import machine, versions  # benchmarks/ is on sys.path when run as a script

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = ("skorch", "skorch_fused", "crust", "crust_drop", "crust_plain")


class _PhaseTimer:
    """skorch callback: seconds of the training batches and of the validation pass per epoch.

    The net's own ``on_epoch_begin`` (where CRUST selects) runs before any callback's, so the
    training phase starts after the selection.
    """

    def __new__(cls):
        from skorch.callbacks import Callback

        class PhaseTimer(Callback):
            def on_epoch_begin(self, net, **kwargs):
                self.start = self.valid_start = time.perf_counter()
                self.in_valid = False

            def on_batch_begin(self, net, training=False, **kwargs):
                if not training and not self.in_valid:
                    self.valid_start, self.in_valid = time.perf_counter(), True

            def on_epoch_end(self, net, **kwargs):
                now = time.perf_counter()
                valid_start = self.valid_start if self.in_valid else now
                net.history.record("train_seconds", valid_start - self.start)
                net.history.record("valid_seconds", now - valid_start)

        return PhaseTimer()


def _tabular(quick: bool):
    from sklearn.datasets import make_classification

    from sk_crust import add_label_noise

    n_train = 6_000 if quick else 30_000
    X, y = make_classification(n_train + 6_000, 64, n_informative=32, n_classes=10,
                               n_clusters_per_class=1, random_state=0)
    X = X.astype(np.float32)
    y_noisy = add_label_noise(y[:n_train], 0.5, random_state=0)[0]
    return dict(X=X[:n_train], y=y_noisy, X_test=X[n_train:], y_test=y[n_train:], module="mlp",
                about=f"make_classification {n_train:,} x 64 float32, 10 classes, 50% symmetric "
                      "noise; MLP 64-256-10")


def _digits(quick: bool):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from sk_crust import add_label_noise

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        (X / 16.0).astype(np.float32), y, test_size=0.3, stratify=y, random_state=0)
    y_noisy = add_label_noise(y_train, 0.5, random_state=0)[0]
    return dict(X=X_train, y=y_noisy, X_test=X_test, y_test=y_test, module="mlp",
                about=f"scikit-learn digits, {len(X_train):,} x 64 float32 training rows, 10 "
                      "classes, 50% symmetric noise; MLP 64-256-10")


def _fashion(quick: bool, n_train: int | None):
    from _datasets import load_fashion_mnist

    from sk_crust import add_label_noise

    n = 3_000 if quick else n_train
    X, y = load_fashion_mnist(subset="train", n_samples=n, random_state=0)
    X_test, y_test = load_fashion_mnist(subset="test", n_samples=5_000, random_state=0)
    y_noisy = add_label_noise(y, 0.5, random_state=0)[0]
    return dict(X=X, y=y_noisy, X_test=X_test, y_test=y_test, module="cnn",
                about=f"Fashion-MNIST, {len(X):,} training images (1x28x28 float32), 50% "
                      "symmetric noise; SmallCNN")


def _net(method: str, case: dict, epochs: int, device: str, seed: int):
    import torch
    from skorch import NeuralNetClassifier

    from sk_crust import MLP, CrustClassifier, SmallCNN

    common = dict(max_epochs=epochs, lr=1e-3, optimizer=torch.optim.Adam, batch_size=128,
                  device=device, verbose=0, callbacks=[("phases", _PhaseTimer())])
    n_classes = int(len(np.unique(case["y"])))
    if method.startswith("skorch"):
        torch.manual_seed(seed)
        if method == "skorch_fused":
            common["optimizer__fused"] = True
        module = MLP if case["module"] == "mlp" else SmallCNN
        extra = (dict(module__n_features=int(np.prod(case["X"].shape[1:])))
                 if case["module"] == "mlp" else {})
        # skorch's classifier defaults to NLLLoss (log-probabilities); the modules return logits.
        return NeuralNetClassifier(module, module__n_classes=n_classes, **extra,
                                   criterion=torch.nn.CrossEntropyLoss,
                                   iterator_train__shuffle=True, **common)
    warmup = epochs if method == "crust_plain" else None
    former = dict(unselected_weight=0.0, noisy_criterion="keep") if method == "crust_drop" else {}
    return CrustClassifier(case["module"], warmup_epochs=warmup, random_state=seed, **former,
                           **common)


def _fit(method, case, epochs, device, seed):
    net = _net(method, case, epochs, device, seed)
    start = time.perf_counter()
    net.fit(case["X"], case["y"])
    seconds = time.perf_counter() - start
    history = net.history
    row = dict(seconds=seconds, accuracy=float(np.mean(net.predict(case["X_test"])
                                                       == case["y_test"])),
               train=list(history[:, "train_seconds"]), valid=list(history[:, "valid_seconds"]))
    if not method.startswith("skorch"):
        row["feature"] = list(history[:, "feature_seconds"])
        row["selection"] = [s - f for s, f in zip(history[:, "selection_seconds"],
                                                  history[:, "feature_seconds"], strict=True)]
        row["coreset_size"] = list(history[:, "coreset_size"])
    return row


def _ms(value: float) -> str:
    """Milliseconds, with a decimal below 10 (a small set's epoch takes a few)."""
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def _median(values) -> float:
    return float(statistics.median(values)) if values else float("nan")


def run_case(name: str, case: dict, *, epochs: int, repeats: int, device: str, out) -> list[str]:
    runs = {m: [] for m in METHODS}
    for repeat in range(repeats):
        for method in METHODS:
            row = _fit(method, case, epochs, device, seed=repeat)
            runs[method].append(row)
            out(f"  [{name}] repeat {repeat + 1}/{repeats} {method:12s} {row['seconds']:7.1f} s"
                f"  test accuracy {row['accuracy']:.3f}")
    skorch = _median([r["seconds"] for r in runs["skorch"]])
    lines = [f"### {name}: {case['about']}", "",
             f"{epochs} epochs, batch 128, Adam 1e-3, median of {repeats} fit(s) per method, "
             "methods alternating within each repeat.", "",
             "| method | fit (s), median | ratio to skorch | min / max (s) | clean test accuracy |",
             "|---|---|---|---|---|"]
    for method in METHODS:
        seconds = [r["seconds"] for r in runs[method]]
        accuracy = _median([r["accuracy"] for r in runs[method]])
        lines.append(f"| {method} | {_median(seconds):.2f} | {_median(seconds) / skorch:.2f}x | "
                     f"{min(seconds):.2f} / {max(seconds):.2f} | {accuracy:.3f} |")
    for method in ("crust", "crust_drop"):
        lines += _breakdown(runs, method, epochs)
    return lines


def _breakdown(runs, name, epochs) -> list[str]:
    """Per-epoch breakdown of one CRUST fit (medians over repeats and epochs of each kind)."""
    crust = runs[name]
    # Warm-up epochs run no feature pass (with the rest trained, every epoch has all rows).
    warm = [e for e in range(epochs) if crust[0]["feature"][e] == 0]
    after = [e for e in range(epochs) if e not in warm]

    def phase(key, epochs_of_kind, rows=crust):
        return _median([r[key][e] for r in rows for e in epochs_of_kind]) * 1e3

    full_epoch = phase("train", warm)
    skorch_epoch = _median([r["train"][e] for r in runs["skorch"] for e in range(epochs)]) * 1e3
    lines = ["", f"Per-epoch breakdown of the `{name}` fit, milliseconds (median over repeats "
             "and epochs):", "",
             "| epochs | feature pass | selection | training batches | validation |",
             "|---|---|---|---|---|",
             f"| warm-up (all data) | - | - | {_ms(full_epoch)} | {_ms(phase('valid', warm))} |"]
    if after:
        feature, selection = phase("feature", after), phase("selection", after)
        lines.append(f"| coreset | {_ms(feature)} | {_ms(selection)} | "
                     f"{_ms(phase('train', after))} | {_ms(phase('valid', after))} |")
        lines += ["", f"Feature pass + selection: {_ms(feature + selection)} ms = "
                  f"{100 * (feature + selection) / full_epoch:.0f}% of one full-data training "
                  f"epoch of sk_crust ({_ms(full_epoch)} ms), "
                  f"{100 * (feature + selection) / skorch_epoch:.0f}% of one of skorch "
                  f"({_ms(skorch_epoch)} ms)."]
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=["tabular"],
                        choices=["tabular", "fashion", "digits"])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads for every method (default: torch's, one "
                             "per core; 1 is steadier on a machine shared with other jobs)")
    parser.add_argument("--fashion-n", type=int, default=60_000)
    parser.add_argument("--quick", action="store_true",
                        help="small data, 8 epochs, 2 repeats: a smoke run")
    parser.add_argument("--output", default=None, help="markdown file (default: results/"
                        "training_speed.md, or training_speed_quick.md with --quick)")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.repeats = min(args.epochs, 8), min(args.repeats, 2)
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    lines = ["# Training-loop speed: CrustClassifier vs skorch", "",
             f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `python "
             f"benchmarks/training_speed.py {' '.join(argv if argv is not None else sys.argv[1:])}`"
             ".", "", f"Machine: {machine()}; torch threads: {torch.get_num_threads()}; "
             f"device: {args.device}; load average at start {os.getloadavg()[0]:.1f} (other "
             "jobs on the machine slow every method alike; the ratios are what to read).", "",
             f"Versions: {versions(['numpy', 'torch', 'skorch', 'sklearn', 'sk_crust'])}.", ""]
    for name in args.cases:
        case = (_tabular(args.quick) if name == "tabular" else _digits(args.quick)
                if name == "digits" else _fashion(args.quick, args.fashion_n))
        print(f"case {name}: {case['about']}", flush=True)
        lines += run_case(name, case, epochs=args.epochs, repeats=args.repeats,
                          device=args.device, out=lambda s: print(s, flush=True)) + [""]
    text = "\n".join(lines)
    print(text)
    default = "training_speed_quick.md" if args.quick else "training_speed.md"
    path = Path(args.output) if args.output else RESULTS / default
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
