"""Synthetic label noise for benchmarks: symmetric, asymmetric (class map), pair-flip, or any
transition matrix, each returned with its transition matrix.

The built-in kinds flip an *exact* number of labels (not one coin per sample), so a benchmark that
advertises "40% noise" has exactly 40% of its labels wrong, whatever the seed.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real

import numpy as np
from sklearn.utils import check_random_state

__all__ = ["add_label_noise", "noise_rate"]

_KINDS = ("symmetric", "asymmetric", "pairflip")
# Tolerance on the row sums of a user transition matrix: loose enough for matrices typed by hand
# or estimated in float32, tight enough to catch a row that is plainly not a distribution.
_ROW_SUM_ATOL = 1e-6


def add_label_noise(
    y,
    rate: float | None,
    *,
    kind: str | np.ndarray = "symmetric",
    classes=None,
    mapping: Mapping | None = None,
    random_state=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Corrupt labels with synthetic noise and return the noise's transition matrix.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        True labels: ints, strings or any comparable values (a list, a numpy array or a pandas
        Series). Never modified.
    rate : float in [0, 1] or None
        Fraction of the eligible samples whose label is changed. Eligible samples are all samples
        for ``kind="symmetric"`` and ``"pairflip"``, and the samples of the classes that have a
        target class for ``kind="asymmetric"``. Must be None when ``kind`` is a matrix, which sets
        the noise itself.
    kind : {"symmetric", "asymmetric", "pairflip"} or ndarray of shape (n_classes, n_classes), \
            default="symmetric"
        - ``"symmetric"``: a flipped sample gets a class drawn uniformly among the *other*
          ``n_classes - 1`` classes (the true class is excluded).
        - ``"asymmetric"``: a flipped sample of class ``c`` gets ``mapping[c]``. Without
          ``mapping``, the map is a random permutation of the classes without fixed points (a
          derangement), drawn with ``random_state``, as the official CRUST code does for CIFAR.
        - ``"pairflip"``: a flipped sample of ``classes[i]`` gets ``classes[(i + 1) % n_classes]``.
        - a row-stochastic matrix ``T``: the noisy label of each sample of ``classes[i]`` is drawn
          independently from row ``T[i]`` (so the number of flips is random, not exact).
    classes : array-like of shape (n_classes,), default=None
        The classes, in the order used by the transition matrix, by ``"pairflip"`` and by a matrix
        ``kind``. Defaults to ``np.unique(y)``. May include classes absent from ``y``; they can
        then be drawn as noisy labels.
    mapping : dict, default=None
        Only with ``kind="asymmetric"``: ``{true_class: noisy_class}``. It need not be a
        permutation; classes left out keep their labels. A class may not map to itself.
    random_state : int, RandomState instance or None, default=None
        Seeds which samples are flipped, their new classes and the random derangement. Pass an int
        for reproducible noise.

    Returns
    -------
    y_noisy : ndarray of shape (n_samples,)
        Noisy labels, with the dtype of ``np.asarray(y)``.
    transition_matrix : ndarray of shape (n_classes, n_classes)
        ``T[i, j] = P(noisy = classes[j] | true = classes[i])``; rows sum to 1. For the built-in
        kinds this is the nominal matrix built from ``rate``; the observed per-class fractions
        match it up to the rounding of the exact counts (within one sample per class).

    Raises
    ------
    ValueError
        If ``rate``, ``kind``, ``classes``, ``mapping`` or ``y`` is not valid; the message names the
        parameter and what is accepted.
    TypeError
        If ``mapping`` is neither None nor a dict.

    See Also
    --------
    noise_rate : Fraction of labels that differ between two label vectors.

    Notes
    -----
    **Exact counts.** For the built-in kinds, exactly ``round(rate * n_eligible)`` samples are
    flipped. The count is split over the classes in proportion to their sizes (largest remainders,
    ties broken at random), and the flipped samples of each class are drawn uniformly at random
    without replacement. So ``noise_rate(y, y_noisy)`` equals ``rate`` up to that rounding for
    ``"symmetric"`` and ``"pairflip"``, and each class's flipped fraction is within one sample of
    ``rate``. The official CRUST code instead flips each sample with probability ``rate``, which
    gives the same matrix in expectation.

    **Symmetric convention.** Here a flip never lands on the true class, so ``rate=0.5`` leaves
    exactly 50% of the labels correct, whatever the number of classes:
    ``T = (1 - rate) I + rate / (K - 1) (1 - I)``. Some papers instead replace a fraction ``r`` of
    the labels by a class drawn uniformly over *all* ``K`` classes, true one included; only
    ``r (K - 1) / K`` of their labels are then wrong (45% for ``r = 0.5`` and ``K = 10``). To
    reproduce that convention pass ``rate = r * (K - 1) / K``; conversely this function's ``rate``
    equals ``r = rate * K / (K - 1)`` there.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_crust.noise import add_label_noise, noise_rate
    >>> y = np.repeat([0, 1, 2, 3], 25)
    >>> y_noisy, T = add_label_noise(y, 0.4, random_state=0)
    >>> noise_rate(y, y_noisy)
    0.4
    >>> bool(np.any(y_noisy[y != y_noisy] == y[y != y_noisy]))
    False
    >>> T.round(2)
    array([[0.6 , 0.13, 0.13, 0.13],
           [0.13, 0.6 , 0.13, 0.13],
           [0.13, 0.13, 0.6 , 0.13],
           [0.13, 0.13, 0.13, 0.6 ]])

    Pair-flip noise moves a flipped label to the next class, and works with string labels:

    >>> y = np.array(["cat", "cat", "dog", "dog", "owl", "owl"])
    >>> y_noisy, T = add_label_noise(y, 0.5, kind="pairflip", random_state=0)
    >>> sorted(zip(y[y != y_noisy].tolist(), y_noisy[y != y_noisy].tolist()))
    [('cat', 'dog'), ('dog', 'owl'), ('owl', 'cat')]
    >>> T
    array([[0.5, 0.5, 0. ],
           [0. , 0.5, 0.5],
           [0.5, 0. , 0.5]])

    A class map for asymmetric noise (CIFAR-10 style: truck -> automobile, cat <-> dog):

    >>> y = np.repeat(["automobile", "cat", "dog", "truck"], 10)
    >>> mapping = {"truck": "automobile", "cat": "dog", "dog": "cat"}
    >>> y_noisy, T = add_label_noise(y, 0.3, kind="asymmetric", mapping=mapping, random_state=0)
    >>> int((y_noisy != y).sum())
    9
    >>> T
    array([[1. , 0. , 0. , 0. ],
           [0. , 0.7, 0.3, 0. ],
           [0. , 0.3, 0.7, 0. ],
           [0.3, 0. , 0. , 0.7]])
    """
    y_arr = _as_1d_labels(y)
    classes_arr = _validate_classes(classes, y_arr)
    n_classes = len(classes_arr)
    codes = _encode(y_arr, classes_arr, what="y")
    rng = check_random_state(random_state)

    if isinstance(kind, str):
        if kind not in _KINDS:
            raise ValueError(
                f"kind={kind!r} is not valid: pass one of {', '.join(map(repr, _KINDS))} or a "
                "(n_classes, n_classes) row-stochastic numpy array"
            )
        rate = _validate_rate(rate)
        if mapping is not None and kind != "asymmetric":
            raise ValueError(
                f"mapping is only used with kind='asymmetric', got kind={kind!r}: pass "
                "mapping=None or kind='asymmetric'"
            )
        if n_classes < 2:
            raise ValueError(
                f"kind={kind!r} needs at least 2 classes to flip labels between, got "
                f"{n_classes} ({classes_arr.tolist()!r}): pass `classes` listing all the classes"
            )
        if kind == "symmetric":
            target = None
        elif kind == "pairflip":
            target = (np.arange(n_classes) + 1) % n_classes
        elif mapping is None:
            target = _random_derangement(n_classes, rng)
        else:
            target = _mapping_to_targets(mapping, classes_arr)
        transition = _nominal_transition(rate, n_classes, target)
        new_codes = _flip_exact(codes, rate, n_classes, target, rng)
    else:
        transition = _validate_transition(kind, n_classes)
        if mapping is not None:
            raise ValueError(
                "mapping is only used with kind='asymmetric', got a transition matrix as kind: "
                "pass mapping=None"
            )
        if rate is not None:
            raise ValueError(
                f"rate={rate!r} is not used when kind is a transition matrix (the matrix sets the "
                "noise): pass rate=None"
            )
        new_codes = _draw_from_rows(codes, transition, rng)

    # Start from a copy in the input's dtype and only overwrite flipped entries, so unflipped labels
    # come back bit-identical (e.g. pandas objects stay the same objects).
    out_dtype = y_arr.dtype
    if out_dtype.kind in "US" and classes_arr.dtype.kind in "US":
        # A user-given class may be longer than every string in y; do not truncate it.
        out_dtype = np.promote_types(out_dtype, classes_arr.dtype)
    y_noisy = y_arr.astype(out_dtype, copy=True)
    changed = np.flatnonzero(new_codes != codes)
    y_noisy[changed] = classes_arr[new_codes[changed]]
    return y_noisy, transition


def noise_rate(y_true, y_noisy) -> float:
    """Fraction of samples whose noisy label differs from the true one.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.
    y_noisy : array-like of shape (n_samples,)
        Observed (noisy) labels.

    Returns
    -------
    rate : float
        ``mean(y_true != y_noisy)``.

    Examples
    --------
    >>> from sk_crust.noise import noise_rate
    >>> noise_rate([0, 1, 2, 3], [0, 1, 0, 0])
    0.5
    """
    y_true_arr = _as_1d_labels(y_true, name="y_true")
    y_noisy_arr = _as_1d_labels(y_noisy, name="y_noisy")
    if len(y_true_arr) != len(y_noisy_arr):
        raise ValueError(
            f"y_true and y_noisy must have the same length, got {len(y_true_arr)} and "
            f"{len(y_noisy_arr)}"
        )
    if len(y_true_arr) == 0:
        raise ValueError("y_true and y_noisy are empty: the noise rate of no samples is undefined")
    return float(np.mean(y_true_arr != y_noisy_arr))


# --- validation -------------------------------------------------------------------------------


def _as_1d_labels(y, name: str = "y") -> np.ndarray:
    # np.asarray, not a copy: the caller copies before writing, and never writes into this array.
    arr = y.to_numpy() if hasattr(y, "to_numpy") else np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (n_samples,), got an array of shape {arr.shape}")
    return arr


def _validate_rate(rate) -> float:
    if (
        isinstance(rate, bool)
        or not isinstance(rate, Real)
        or not np.isfinite(rate)
        or not 0 <= rate <= 1
    ):
        raise ValueError(f"rate={rate!r} is not valid: pass a float in [0, 1]")
    return float(rate)


def _validate_classes(classes, y: np.ndarray) -> np.ndarray:
    if classes is None:
        try:
            return np.unique(y)
        except TypeError:  # e.g. ints mixed with strings: numpy cannot sort them
            types = sorted({type(v).__name__ for v in y.tolist()})
            raise TypeError(f"y mixes label types that cannot be sorted ({', '.join(types)}): "
                            "pass labels of one type, or pass `classes`") from None
    classes_arr = _as_1d_labels(classes, name="classes")
    if len(classes_arr) == 0:
        raise ValueError("classes=[] is not valid: pass the distinct class labels, or None")
    if len(np.unique(classes_arr)) != len(classes_arr):
        raise ValueError(
            f"classes={classes_arr.tolist()!r} is not valid: it has duplicates; pass each class "
            "once"
        )
    return classes_arr


def _encode(values: np.ndarray, classes: np.ndarray, *, what: str) -> np.ndarray:
    """Position of each value in ``classes``; ValueError naming ``what`` for unknown values."""
    order = np.argsort(classes, kind="stable")
    sorted_classes = classes[order]
    pos = np.searchsorted(sorted_classes, values)
    pos_clipped = np.minimum(pos, len(classes) - 1)
    known = sorted_classes[pos_clipped] == values
    if not np.all(known):
        unknown = np.unique(values[~known])
        raise ValueError(
            f"{what} has labels that are not in classes: {unknown[:10].tolist()!r}; classes are "
            f"{classes.tolist()!r}. Pass classes=None or list every label in classes"
        )
    return order[pos_clipped]


def _mapping_to_targets(mapping, classes: np.ndarray) -> np.ndarray:
    """Turn ``{true: noisy}`` into ``target[i]`` = code of the noisy class, -1 for 'not mapped'."""
    if not isinstance(mapping, Mapping):
        raise TypeError(
            f"mapping={mapping!r} is not valid: pass a dict {{true_class: noisy_class}} or None"
        )
    target = np.full(len(classes), -1, dtype=np.intp)
    if not mapping:
        return target
    keys = np.asarray(list(mapping.keys()))
    values = np.asarray(list(mapping.values()))
    key_codes = _encode(keys, classes, what="mapping's keys")
    value_codes = _encode(values, classes, what="mapping's values")
    self_mapped = keys[key_codes == value_codes]
    if len(self_mapped):
        raise ValueError(
            f"mapping maps {self_mapped.tolist()!r} to itself: leave a class out of mapping to "
            "keep its labels clean"
        )
    target[key_codes] = value_codes
    return target


def _validate_transition(matrix, n_classes: int) -> np.ndarray:
    try:
        transition = np.array(matrix, dtype=np.float64)  # a copy: never hand back the caller's
    except (TypeError, ValueError):
        transition = None
    if transition is None or transition.ndim != 2:
        raise ValueError(
            f"kind={matrix!r} is not valid: pass one of {', '.join(map(repr, _KINDS))} or a "
            "(n_classes, n_classes) row-stochastic numpy array"
        )
    if transition.shape != (n_classes, n_classes):
        raise ValueError(
            f"the transition matrix passed as kind has shape {transition.shape}, but there are "
            f"{n_classes} classes: pass a ({n_classes}, {n_classes}) matrix, rows and columns in "
            "the order of `classes` (default np.unique(y))"
        )
    if not np.all(np.isfinite(transition)) or np.any(transition < 0):
        raise ValueError(
            "the transition matrix passed as kind has negative or non-finite entries: pass "
            "probabilities in [0, 1]"
        )
    row_sums = transition.sum(axis=1)
    bad_rows = np.flatnonzero(np.abs(row_sums - 1) > _ROW_SUM_ATOL)
    if len(bad_rows):
        raise ValueError(
            f"the transition matrix passed as kind has rows that do not sum to 1 (rows "
            f"{bad_rows[:10].tolist()} sum to {row_sums[bad_rows[:10]].round(6).tolist()}): pass "
            "a row-stochastic matrix, T[i, j] = P(noisy=j | true=i)"
        )
    return transition


# --- noise kernels (inputs already validated) ---------------------------------------------------


def _random_derangement(n_classes: int, rng: np.random.RandomState) -> np.ndarray:
    # Rejection sampling is exactly uniform over derangements, and a random permutation has no
    # fixed point with probability ~1/e, so ~2.7 draws are expected.
    identity = np.arange(n_classes)
    while True:
        perm = rng.permutation(n_classes)
        if not np.any(perm == identity):
            return perm


def _nominal_transition(rate: float, n_classes: int, target: np.ndarray | None) -> np.ndarray:
    if target is None:  # symmetric
        transition = np.full((n_classes, n_classes), rate / (n_classes - 1))
        np.fill_diagonal(transition, 1 - rate)
        return transition
    transition = np.eye(n_classes)
    mapped = np.flatnonzero(target >= 0)
    transition[mapped, mapped] = 1 - rate
    # `+=`, not `=`: cannot collide with the diagonal because self-maps are rejected.
    transition[mapped, target[mapped]] += rate
    return transition


def _proportional_allocation(
    total: int, sizes: np.ndarray, rng: np.random.RandomState
) -> np.ndarray:
    """Split ``total`` into per-group integers proportional to ``sizes`` (largest remainders).

    Ties among remainders are broken at random so no group is favoured by its position. Each part
    is within 1 of ``total * size / sum(sizes)`` and never exceeds its size (``total <= sum``).
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    n_total = int(sizes.sum())
    if total == 0 or n_total == 0:
        return np.zeros_like(sizes)
    quotas = total * sizes / n_total
    parts = np.floor(quotas).astype(np.int64)
    remainder = quotas - parts
    n_left = total - int(parts.sum())
    # lexsort: last key is primary -> by remainder descending, then a random tie-breaker.
    order = np.lexsort((rng.random_sample(len(sizes)), -remainder))
    parts[order[:n_left]] += 1
    return parts


def _sample_per_class(
    codes: np.ndarray, per_class: np.ndarray, rng: np.random.RandomState
) -> np.ndarray:
    """Positions of ``per_class[c]`` samples of each class ``c``, uniformly without replacement.

    ``codes`` are class codes in ``[0, len(per_class))``; ``per_class[c]`` must not exceed the size
    of class ``c``. Positions come back grouped by class (callers shuffle if order matters).
    """
    # No Python loop over samples: give every sample a random key, sort by (class, key), and keep
    # the first per_class[c] of each class.
    n_samples = len(codes)
    order = np.lexsort((rng.random_sample(n_samples), codes))
    sizes = np.bincount(codes, minlength=len(per_class))
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    sorted_codes = codes[order]
    rank_in_class = np.arange(n_samples) - starts[sorted_codes]
    return order[rank_in_class < per_class[sorted_codes]]


def _flip_exact(
    codes: np.ndarray,
    rate: float,
    n_classes: int,
    target: np.ndarray | None,
    rng: np.random.RandomState,
) -> np.ndarray:
    """New class codes with exactly round(rate * n_eligible) flips (``target`` None: symmetric)."""
    counts = np.bincount(codes, minlength=n_classes)
    if target is not None:
        counts = np.where(target >= 0, counts, 0)
    n_flips = round(rate * int(counts.sum()))
    per_class = _proportional_allocation(n_flips, counts, rng)
    flipped = _sample_per_class(codes, per_class, rng)

    new_codes = codes.copy()
    if target is None:
        # An offset in [1, K-1] added modulo K is uniform over the K-1 other classes.
        offsets = rng.randint(1, n_classes, size=len(flipped))
        new_codes[flipped] = (codes[flipped] + offsets) % n_classes
    else:
        new_codes[flipped] = target[codes[flipped]]
    return new_codes


def _draw_from_rows(
    codes: np.ndarray, transition: np.ndarray, rng: np.random.RandomState
) -> np.ndarray:
    # Remove the rounding error the row-sum tolerance let through: rng.choice is stricter. The
    # caller gets its matrix back as given, not this normalised copy.
    probabilities = transition / transition.sum(axis=1, keepdims=True)
    new_codes = codes.copy()
    # One vectorised draw per class (K calls), not one per sample.
    for c in np.unique(codes):
        members = np.flatnonzero(codes == c)
        new_codes[members] = rng.choice(len(transition), size=len(members), p=probabilities[c])
    return new_codes
