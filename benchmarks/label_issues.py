"""Which labels are wrong? CRUST's rankings against cleanlab's on synthetic flips (issue 13).

For each data set, noise setting and seed, the training rows get synthetic label flips (the true
flip mask is known to the benchmark only) and every method ranks all rows by how suspicious their
label looks:

- ``cleanlab_lr``: cleanlab's ``get_label_quality_scores`` (self-confidence; ranking score
  ``1 - quality``) and ``find_label_issues(return_indices_ranked_by="self_confidence")`` (the
  flagged set) on the 5-fold out-of-fold ``predict_proba`` of ``LogisticRegression(max_iter=1000)``
  (``cross_val_predict``, the sampler's own folds);
- ``cleanlab_mlp``: the same on the 5-fold out-of-fold probabilities of the same net as
  ``crust_net``, trained plainly (``CrustClassifier(warmup_epochs=max_epochs)``: no selection);
- ``sampler_center``: ``CrustSampler(k="auto", optimizer="centrality").fit_resample`` (default
  estimator, the same LR and folds as ``cleanlab_lr``), then
  ``sampler.selector_.get_label_issues()["suspicion"]`` (distance of the gradient feature to its
  class's centre); flagged = rows left out of the coreset;
- ``sampler_gradnorm``: the same sampler, ranking by the norm of its gradient features
  ``||p - onehot(y)||`` (``sampler.gradients_``, a public attribute); flagged as above;
- ``sampler_default``: ``CrustSampler()`` as it is today (lazy, k=0.5): its selector's suspicion
  and its coreset;
- ``crust_net``: ``CrustClassifier(max_epochs=30, verbose=0, random_state=seed).fit(X, y_noisy)``
  then ``get_label_issues(X, y_noisy)`` ranked by ``suspicion``; flagged = ``~selected``. One
  training run (the issue's "one training run against K folds").

Metrics against the true flip mask: AUROC of the ranking; precision at m = the true number of
flips (equal to recall at m, since m is the number of flips); for the flagged set, its size,
precision and recall; wall time (for cleanlab: the out-of-fold fits + scoring).

Examples
--------
::

    python benchmarks/label_issues.py --quick
    python benchmarks/label_issues.py --seeds 0
    python benchmarks/label_issues.py --render-only
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from _report import invocation, machine, run_with_threads, versions  # noqa: E402  (benchmarks/ is on sys.path as a script)
from sampler_defaults import DATASETS, _source, load_raw  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
N_ROWS = 1500
DEFAULT_DATASETS = ["digits", "segment", "vehicle", "satimage", "spambase"]
NOISE = ("sym20", "sym50", "asym40")
METHODS = ("cleanlab_lr", "cleanlab_mlp", "sampler_center", "sampler_gradnorm",
           "sampler_default", "crust_net")
LABELS = {"cleanlab_lr": "cleanlab, LR out-of-fold", "cleanlab_mlp": "cleanlab, MLP out-of-fold",
          "sampler_center": "CrustSampler(k=auto, centrality): selector suspicion",
          "sampler_gradnorm": "CrustSampler(k=auto, centrality): gradient norm",
          "sampler_default": "CrustSampler() default: selector suspicion",
          "crust_net": "CrustClassifier.get_label_issues"}
EPOCHS = 30


def rows(name: str, seed: int):
    """A stratified subsample of at most N_ROWS rows, standardised (float32 for the net)."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_raw(name)
    if len(y) > N_ROWS:
        X, _, y, _ = train_test_split(X, y, train_size=N_ROWS, stratify=y, random_state=seed)
    return StandardScaler().fit_transform(X).astype(np.float32), y


def noisy(y, noise: str, seed: int):
    from sk_crust import add_label_noise

    rate = int(noise[-2:]) / 100
    if noise.startswith("sym"):
        return np.asarray(add_label_noise(y, rate, random_state=seed)[0])
    classes = np.unique(y)
    mapping = {classes[1]: classes[0]} if len(classes) == 2 else None
    return np.asarray(add_label_noise(y, rate, kind="asymmetric", mapping=mapping,
                                      random_state=seed)[0])


def metrics(flips, score, flagged=None) -> dict:
    from sklearn.metrics import roc_auc_score

    m = int(flips.sum())
    top = np.argsort(-score, kind="stable")[:m]
    out = dict(auroc=float(roc_auc_score(flips, score)),
               precision_at_m=float(flips[top].mean()) if m else float("nan"))
    if flagged is not None:
        flagged = np.asarray(flagged, dtype=bool)
        hit = int((flagged & flips).sum())
        out.update(n_flagged=int(flagged.sum()),
                   flagged_precision=hit / max(int(flagged.sum()), 1),
                   flagged_recall=hit / max(m, 1))
    return out


def _net(seed: int, **kw):
    from sk_crust import CrustClassifier

    return CrustClassifier(max_epochs=EPOCHS, verbose=0, random_state=seed, **kw)


def cleanlab_scores(y, proba):
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    quality = get_label_quality_scores(y, proba, method="self_confidence")
    ranked = find_label_issues(y, proba, return_indices_ranked_by="self_confidence")
    flagged = np.zeros(len(y), dtype=bool)
    flagged[ranked] = True
    return 1.0 - quality, flagged


def run_triple(name, noise, seed, methods, done):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    from sk_crust import CrustSampler

    X, y_true = rows(name, seed)
    y = noisy(y_true, noise, seed)
    flips = y != y_true
    base = dict(dataset=name, noise=noise, seed=seed, n=len(y), n_flips=int(flips.sum()),
                actual_noise=float(flips.mean()))
    out = []
    for method in methods:
        if (name, noise, seed, method) in done:
            continue
        start = time.perf_counter()
        extra = {}
        try:
            if method == "cleanlab_lr":
                proba = cross_val_predict(LogisticRegression(max_iter=1000), X, y, cv=5,
                                          method="predict_proba")
                score, flagged = cleanlab_scores(y, proba)
            elif method == "cleanlab_mlp":
                proba = cross_val_predict(_net(seed, warmup_epochs=EPOCHS), X, y, cv=5,
                                          method="predict_proba")
                score, flagged = cleanlab_scores(y, proba)
            elif method in ("sampler_center", "sampler_gradnorm", "sampler_default"):
                sampler = (CrustSampler(random_state=seed) if method == "sampler_default" else
                           CrustSampler(k="auto", optimizer="centrality", random_state=seed))
                sampler.fit_resample(X, y)
                if method == "sampler_gradnorm":
                    score = np.linalg.norm(np.asarray(sampler.gradients_), axis=1)
                else:
                    issues = sampler.selector_.get_label_issues()
                    score = np.empty(len(y))
                    score[np.asarray(issues.index)] = issues["suspicion"].to_numpy()
                flagged = np.ones(len(y), dtype=bool)
                flagged[np.asarray(sampler.sample_indices_)] = False
                extra["k"] = len(sampler.sample_indices_) / len(y)
            elif method == "crust_net":
                net = _net(seed).fit(X, y)
                issues = net.get_label_issues(X, y)
                score = np.empty(len(y))
                score[np.asarray(issues.index)] = issues["suspicion"].to_numpy()
                flagged = ~issues.sort_index()["selected"].to_numpy(dtype=bool)
            else:
                raise ValueError(f"method={method!r} is not valid: pass one of {METHODS}")
        except Exception as exc:  # a method broken by a concurrent edit must not stop the run
            print(f"{name} {noise} seed={seed} {method}: FAILED {type(exc).__name__}: {exc}",
                  flush=True)
            continue
        seconds = time.perf_counter() - start
        out.append(dict(base, method=method, seconds=seconds, **metrics(flips, score, flagged),
                        **extra))
    return out


# --------------------------------------------------------------------------- bookkeeping
def key(r):
    return (r["dataset"], r["noise"], int(r["seed"]), r["method"])


def read_records(path: Path):
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def run_grid(args):
    done = {key(r) for r in read_records(args.out)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for name in args.datasets:
            for noise in args.noise:
                records = run_triple(name, noise, seed, args.methods, done)
                with open(args.out, "a") as fh:
                    for r in records:
                        fh.write(json.dumps(r) + "\n")
                for r in records:
                    print(f"{name:10s} {noise:6s} seed={seed} {r['method']:17s} "
                          f"AUROC={r['auroc']:.3f} P@m={r['precision_at_m']:.3f} "
                          f"{r['seconds']:.1f}s", flush=True)


def _ms(values, digits=3):
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def render(records, out_md: Path, commands, args) -> str:
    methods = [m for m in METHODS if any(r["method"] == m for r in records)]
    datasets = [d for d in DATASETS if any(r["dataset"] == d for r in records)]
    noises = [n for n in NOISE if any(r["noise"] == n for r in records)]
    seeds = sorted({r["seed"] for r in records})
    cells: dict = {}
    for r in records:
        cells.setdefault((r["dataset"], r["noise"]), {}).setdefault(r["method"], []).append(r)
    lines = [
        "# Ranking the flipped labels (`benchmarks/label_issues.py`)", "",
        f"Rendered {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} from `{args.out.name}` "
        f"({len(records)} rankings; seeds {seeds}).", "",
        f"- Machine: {machine()}, shared with other jobs; one thread per library.",
        f"- Versions: {versions(('sk_crust', 'numpy', 'sklearn', 'torch', 'skorch', 'cleanlab'))}.",
        f"- sk_crust source: {_source()}.",
        *(["- Command:", *[f"  - `{c}`" for c in commands]] if commands else []), "",
        f"Protocol: per seed a stratified subsample of at most {N_ROWS} rows, standardised; "
        "synthetic flips (`symN`: N% to another class; `asym40`: 40% of each class to the class "
        "of a seeded derangement, binary sets: 40% of class 1 to class 0). Every method ranks "
        "all rows; AUROC of the ranking against the true flip mask; P@m = precision among the "
        "m top-ranked rows, m = the true number of flips (= recall at m); 'flagged' = the set "
        "a method calls wrong (cleanlab: `find_label_issues`; CRUST: rows outside the coreset), "
        "its precision / recall. Time: wall seconds, cross-validation fits included.", "",
        "Methods: " + "; ".join(f"`{m}` = {LABELS[m]}" for m in methods) + ". `crust_net` and "
        f"`cleanlab_mlp` train the same `CrustClassifier` MLP for {EPOCHS} epochs (Adam 1e-3, "
        "its defaults); `cleanlab_mlp` five times (5 folds), plainly.", "",
    ]
    if args.notes:
        lines += [Path(args.notes).read_text().strip(), ""]
    # headline
    lines += ["## Summary", "",
              "Mean over all (set, noise) cells; 'AUROC >= cleanlab_X' counts cells where the "
              "method's mean AUROC is at least cleanlab's with that model (minus 0.005).", "",
              "| method | mean AUROC | mean P@m | AUROC >= cleanlab_lr | AUROC >= cleanlab_mlp | "
              "mean time (s) |", "|---|---|---|---|---|---|"]
    for m in methods:
        au, pm, ge_lr, ge_mlp, n_lr, n_mlp = [], [], 0, 0, 0, 0
        for by in cells.values():
            if m not in by:
                continue
            a = np.mean([r["auroc"] for r in by[m]])
            au.append(a)
            pm.append(np.mean([r["precision_at_m"] for r in by[m]]))
            for ref, slot in (("cleanlab_lr", 0), ("cleanlab_mlp", 1)):
                if ref in by:
                    ok = a >= np.mean([r["auroc"] for r in by[ref]]) - 0.005
                    if slot == 0:
                        ge_lr, n_lr = ge_lr + ok, n_lr + 1
                    else:
                        ge_mlp, n_mlp = ge_mlp + ok, n_mlp + 1
        secs = np.mean([r["seconds"] for r in records if r["method"] == m])
        lines.append(f"| {LABELS[m]} | {np.mean(au):.3f} | {np.mean(pm):.3f} | {ge_lr}/{n_lr} | "
                     f"{ge_mlp}/{n_mlp} | {secs:.1f} |")
    lines.append("")
    for metric, title in (("auroc", "AUROC"), ("precision_at_m", "Precision at m (= recall at m)"),
                          ("flagged", "Flagged set: size / precision / recall (mean over seeds)"),
                          ("seconds", "Wall time (s)")):
        lines += [f"## {title}", "", "| set | noise | " + " | ".join(methods) + " |",
                  "|---|---|" + "---|" * len(methods)]
        for d in datasets:
            for n in noises:
                by = cells.get((d, n), {})
                if not by:
                    continue
                row = []
                best = None
                if metric in ("auroc", "precision_at_m"):
                    best = max(np.mean([r[metric] for r in by[m]]) for m in by)
                for m in methods:
                    rs = by.get(m, [])
                    if not rs:
                        row.append("—")
                    elif metric == "flagged":
                        row.append(f"{np.mean([r['n_flagged'] for r in rs]):.0f} / "
                                   f"{np.mean([r['flagged_precision'] for r in rs]):.2f} / "
                                   f"{np.mean([r['flagged_recall'] for r in rs]):.2f}")
                    elif metric == "seconds":
                        row.append(f"{np.mean([r['seconds'] for r in rs]):.1f}")
                    else:
                        text = _ms([r[metric] for r in rs])
                        mean = np.mean([r[metric] for r in rs])
                        row.append(f"**{text}**" if mean == best else text)
                n_flips = np.mean([r["n_flips"] for rs in by.values() for r in rs])
                lines.append(f"| {d} (n={by[next(iter(by))][0]['n']}, m={n_flips:.0f}) | {n} | "
                             + " | ".join(row) + " |")
        lines.append("")
    text = "\n".join(lines) + "\n"
    out_md.write_text(text)
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="digits, seed 0, sym50")
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=DEFAULT_DATASETS)
    parser.add_argument("--noise", nargs="+", choices=NOISE, default=list(NOISE))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--out", type=Path, default=RESULTS / "label_issues.jsonl")
    parser.add_argument("--md", type=Path, default=None)
    parser.add_argument("--notes", type=Path, default=None)
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.datasets, args.seeds, args.noise = ["digits"], [0], ["sym50"]
        if args.out == RESULTS / "label_issues.jsonl":
            args.out = RESULTS / "label_issues_quick.jsonl"
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    if not args.render_only:
        run_with_threads(lambda: run_grid(args), 1)
    commands = invocation(__file__, argv, args.render_only)
    md = args.md or args.out.with_suffix(".md")
    text = render(read_records(args.out), md, commands, args)
    print(text.split("## AUROC")[0])
    print(f"wrote {md}")


if __name__ == "__main__":
    main()
