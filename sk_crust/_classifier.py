"""`CrustClassifier`: a skorch ``NeuralNetClassifier`` that trains on CRUST coresets.

How CRUST is wired into skorch, hook by hook (skorch's own ``fit_loop`` is untouched). The parts
live in their own modules: the data path in ``_batches`` (batches gathered by index for data in
memory), the per-call state in ``_run``, the schedule in ``_schedule``, mixup variants in
``_mixup`` and gradient proxies in ``_gradients``, each with a registry.

* ``get_iterator(dataset_train, training=True)`` builds the training iterator around a
  :class:`~sk_crust._run.SubsetSampler`, whose positions change between epochs, and the state of
  the call (:class:`~sk_crust._run.Run`).
* ``on_epoch_begin`` (the net's own callback hook, called before any user callback) runs the
  :class:`~sk_crust._schedule.Schedule`: during warm-up the sampler yields every training example;
  on selection epochs the net computes gradient features of the training split in evaluation
  mode, runs :class:`~sk_crust.CrustSelector` and points the sampler at the selected medoids;
  between them it keeps the last coreset (across ``partial_fit`` calls on the same data too).
  It records ``coreset_size``, ``selection_seconds``, ``feature_seconds`` and
  ``selection_objective`` in the history.
* ``on_batch_begin`` looks up which training positions the batch holds (the sampler's order),
  their coreset weights, and draws mixup partners and lambda once per batch.
* ``train_step_single`` feeds the mixed input to the module when mixup is on.
* ``get_loss`` turns the per-example losses (the criterion runs with ``reduction="none"``) into a
  weighted mean, mixing the partner's label in when the mixup variant says so.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from contextlib import contextmanager
from numbers import Real
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_consistent_length, column_or_1d, validate_data
from skorch import NeuralNetClassifier
from skorch.callbacks import EpochScoring, EpochTimer, PassthroughScoring, PrintLog
from skorch.dataset import unpack_data
from skorch.utils import is_dataset, to_numpy, to_tensor
from torch.utils.data import default_collate

from ._batches import IndexBatches, SliceBatches, fast_path_kwargs, in_memory
from ._engine import OPTIMIZERS, WEIGHTS
from ._gradients import GRADIENTS, GradientFeatures
from ._gradients import gradient_features as _gradient_features
from ._mixup import MIXUPS, BatchPlan, mix
from ._noise_estimation import CONCENTRATED_NOISE_FROM
from ._optim import use_fused
from ._run import Coreset, Run, SubsetSampler
from ._schedule import Schedule
from ._selector import CrustSelector, check_label_targets
from ._softmax import softmax_rows
from ._validation import beta_parameters, check_choice, encode_labels, is_fraction, is_int
from .callbacks import CoresetCleanFraction
from .losses import GCELoss, SCELoss, _mixed_losses
from .modules import MLP, SmallCNN

__all__ = ["CrustClassifier", "CoresetCleanFraction", "PRESETS"]

GROUP_BY = ("label", "prediction")
# Evaluation passes (validation, prediction, the gradient features) batch in-memory rows of at
# most _SMALL_ROW values by at least _FEATURE_BATCH unless the user sets
# iterator_valid__batch_size (a forward of 24,000 x 64 rows: 49 ms in batches of 128, 33 ms of
# 1024; the validation pass of 6,000 rows: see get_iterator).
_SMALL_ROW = 1024
_FEATURE_BATCH = 1024
MODULES = {"mlp": MLP, "cnn": SmallCNN, "smallcnn": SmallCNN}
#: ``noisy_criterion`` names: the loss that replaces cross entropy once noise shows ("keep": none).
NOISY_CRITERIA = {"sce": SCELoss, "gce": GCELoss, "keep": None}
#: The noise estimate from which ``noisy_criterion`` replaces cross entropy. Below it the
#: ``"auto"`` coreset keeps at least 95% of each class and training stays plain cross entropy,
#: so clean labels train as plain training does.
NOISY_CRITERION_FROM = 0.05
#: ``noisy_criterion_scope`` values: which examples the noisy criterion trains.
NOISY_SCOPES = ("auto", "unselected", "all")
#: ``noisy_criterion_scope="auto"`` keeps cross entropy for the medoids only below this noise
#: estimate. On the noise panel coresets were 91% clean at 20% noise but 76% at 50% (where the
#: estimate reads 0.45-0.55) and 22% at 80%: cross entropy on that many wrong medoid labels
#: memorises them in long training (digits, 50% noise, 60 epochs: -0.039 with 0.5 here).
TRUSTED_NOISE_BELOW = 0.4

#: Values that ``preset`` gives to the parameters left at ``None`` (DESIGN §3).
#: ``"default"``'s selection is what measured best on digits with 50% symmetric noise (MLP,
#: Adam, 60 epochs, 10 seeds, clean test accuracy, coreset 0.5): centrality 0.929 vs exact
#: facility location 0.85; uniform weights 0.929 vs cluster weights 0.912 (cluster weights hand
#: the noisy points' mass to the medoids); cluster mixup +0.008 (0.937), and +0.02 on clean
#: labels; plain training 0.744.
PRESETS: dict[str, dict[str, Any]] = {
    # Since issue 12 (benchmarks/results/noise_panel.md, 14 data sets x every noise level x 3
    # seeds at 20 epochs, 9 sets at 60): the coreset size follows the "spread" noise estimate,
    # so that clean data is not halved (the fixed 0.5 lost 2-18 points on clean labels).
    # With cross entropy, unselected_weight=0.3 did better at 20 epochs but not at 60 (the
    # down-weighted wrong labels get memorised). Since the second round of issue 12 (the same
    # panel): the examples outside the coreset train at 0.3 of a medoid's weight and, once the
    # estimate reads noise (>= 0.05), with the symmetric cross entropy, which keeps them from
    # being memorised: better than the drop-and-cross-entropy default on 13 of 14 sets at 20
    # epochs and 9 of 9 at 60; clean-looking labels (estimate < 0.05) still train plainly.
    # Since the eighth round (the panel and 13 held-out sets, 20 and 60 epochs): the coreset
    # keeps cross entropy and only the rest gets SCE, unless the estimate finds labels moved
    # to one other class (noisy_criterion_scope="auto"); SCE on every example made small and
    # hard sets under-fit (see noise_panel_notes.md).
    "default": dict(coreset_size="auto", unselected_weight=0.3, noisy_criterion="sce",
                    noisy_criterion_scope="auto", warmup_epochs=5, select_every=1,
                    gradient="logits", group_by="label",
                    selection_optimizer="centrality", selection_weights="uniform",
                    mixup="cluster", mixup_alpha=(1.0, 1.0)),
    # The paper states neither warm-up nor the mixup alpha: the official code's warm-up, and
    # alpha = 1 (uniform lambda, the mixup paper's CIFAR setting).
    "paper": dict(coreset_size=0.5, unselected_weight=0.0, noisy_criterion="keep",
                  noisy_criterion_scope="all", warmup_epochs=5, select_every=1,
                  gradient="logits", group_by="prediction", selection_optimizer="lazy",
                  selection_weights="cluster", mixup="cluster", mixup_alpha=(1.0, 1.0)),
    "official": dict(coreset_size=0.5, unselected_weight=0.0, noisy_criterion="keep",
                     noisy_criterion_scope="all", warmup_epochs=5, select_every=1,
                     gradient="penultimate", group_by="label", selection_optimizer="centrality",
                     selection_weights="radius", mixup="class", mixup_alpha=(1.0, 0.1)),
}
_CRUST_PARAMS = tuple(PRESETS["default"])


def _encoded_accuracy(net, X, y) -> float:
    """Validation accuracy on the encoded targets that skorch's datasets hold (0..n_classes-1).

    ``CrustClassifier.predict`` returns the original labels (strings, say), which skorch's
    default ``EpochScoring("accuracy")`` would compare with the encoded ones.
    """
    return float(np.mean(net.predict_proba(X).argmax(axis=1) == to_numpy(y)))


def _weigh_unselected(weights: np.ndarray, medoids: np.ndarray, groups: np.ndarray,
                      fraction: float) -> np.ndarray:
    """Give every example outside the coreset ``fraction`` of its group's mean medoid weight.

    Groups are compared by their medoids' mean weight, so that a class keeps its share of the
    loss whatever its coreset size.
    """
    out = weights.copy()
    names, group_ids = np.unique(groups, return_inverse=True)
    totals = np.bincount(group_ids[medoids], weights=weights[medoids], minlength=len(names))
    counts = np.bincount(group_ids[medoids], minlength=len(names))
    mean = totals / np.maximum(counts, 1)
    rest = np.ones(len(weights), dtype=bool)
    rest[medoids] = False
    out[rest] = fraction * mean[group_ids[rest]]
    return out


class CrustClassifier(NeuralNetClassifier):
    """A skorch neural-net classifier trained on CRUST coresets, robust to noisy labels.

    CRUST (Mirzasoleiman et al., NeurIPS 2020) trains on weighted medoids of the per-example
    gradients of each class, re-selected as training goes: mislabelled examples have gradients
    unlike their class's bulk, so they rarely become medoids. After ``warmup_epochs`` epochs on
    all data, every ``select_every`` epochs the net computes gradient features of the training
    split, selects ``coreset_size`` of each group with :class:`~sk_crust.CrustSelector`, and trains
    on the selected examples with their weights (optionally with mixup).

    It is a :class:`skorch.classifier.NeuralNetClassifier`: every skorch parameter, callback and
    method works (``device``, ``callbacks``, ``train_split``, ``iterator_train__*``,
    ``ProgressBar``, ``EarlyStopping``, checkpoints, ``history``). Differences: the module must
    return logits; the criterion runs with ``reduction="none"`` so that weights can be applied;
    ``X`` is cast to float32 and ``y`` may hold any labels (strings too), encoded with
    ``classes_``; ``predict`` returns those labels; ``predict_proba`` is the softmax of the
    logits whatever the criterion; the training iterator is shuffled unless
    ``iterator_train__shuffle=False``. Arrays and tensors in memory are batched by index
    (one gather per batch instead of skorch's per-example ``__getitem__`` and collate: the same
    batches, several times faster for tabular data); datasets, ``collate_fn``, ``num_workers``
    and other ``iterator_*`` parameters take skorch's ``DataLoader`` path unchanged.

    Parameters
    ----------
    module : {"mlp", "cnn"}, torch module class or instance, default="mlp"
        The network; it must return logits. ``"mlp"`` is :class:`~sk_crust.MLP` and ``"cnn"``
        :class:`~sk_crust.SmallCNN`; for these two, input and output sizes are inferred from the
        data at fit (override them with ``module__n_features`` etc.).
    criterion : torch criterion class or instance, default=torch.nn.CrossEntropyLoss
        Must accept ``reduction="none"`` (set by the net).
    optimizer : torch optimizer class, default=torch.optim.Adam
        ``torch.optim.Adam`` and ``AdamW`` get ``fused=True`` (torch's one-kernel step, the
        same update rule: half the optimizer's time for a small network) when every parameter
        is on the CPU or a CUDA device and no ``optimizer__fused``, ``optimizer__foreach`` or
        ``optimizer__differentiable`` is given; pass ``optimizer__fused=False`` for torch's
        default kernels.
    lr : float, default=1e-3
    coreset_size : float, int or "auto", default=None
        A float in (0, 1] is the fraction of each group to select; an int >= 1 the total size,
        split across groups in proportion to their sizes. ``"auto"``: the fraction of labels
        estimated to be right at the first selection (1 - ``noise_rate_``, clipped to
        [0.1, 1]; the ``"spread"`` estimate of :func:`~sk_crust.estimate_noise_rate` on the
        warm-up model's predictions, plus its ``"concentrated"`` estimate when that reaches
        0.2, so that class-conditional noise counts too). A fraction of 1 trains on all data,
        with no selection.
        ``None``: the preset's (``"auto"`` for ``"default"``, 0.5 for ``"paper"`` and
        ``"official"``).
    unselected_weight : float in [0, 1], default=None
        Weight of the training examples outside the coreset, relative to the mean weight of
        their group's medoids: 0 drops them (the paper), a positive value trains on every
        example each epoch, the medoids at their weight and the rest down-weighted, so that a
        selection mistake costs less. With cross entropy it helped short training on hard data
        and hurt long training, where the down-weighted wrong labels get memorised; with
        ``noisy_criterion`` it helped at both lengths (``noise_panel.md``). ``None``: the
        preset's (0.3 for ``"default"``, 0 for ``"paper"`` and ``"official"``).
    noisy_criterion : {"sce", "gce", "keep"} or loss class, default=None
        The criterion from the first selection on, when ``coreset_size="auto"`` estimates at
        least 5% wrong labels (``noise_rate_``): ``"sce"`` is
        :class:`~sk_crust.losses.SCELoss` (symmetric cross entropy, alpha 0.1, beta 1),
        ``"gce"`` :class:`~sk_crust.losses.GCELoss` (q 0.7), a class is called with
        ``reduction="none"``; ``"keep"`` never switches. Only the default ``criterion`` (the
        class ``torch.nn.CrossEntropyLoss``) is replaced: a criterion you pass is kept.
        After the switch ``criterion_`` is the new loss, and ``train_loss`` /
        ``valid_loss`` in ``history`` are its values. ``None``: the preset's (``"sce"`` for
        ``"default"``, ``"keep"`` for ``"paper"`` and ``"official"``).
    noisy_criterion_scope : {"auto", "unselected", "all"}, default=None
        Which training examples ``noisy_criterion`` applies to once it is switched on.
        ``"unselected"``: only those outside the coreset (trained when
        ``unselected_weight > 0``); the medoids keep cross entropy, since the selection
        judged their labels right, and learn at its speed. ``"all"``: every example.
        ``"auto"``: ``"unselected"``, or ``"all"`` where wrong labels may form a dense
        cluster that the selection can take for clean: two classes (every wrong label comes
        from the one other class), labels moved to one other class
        (``concentrated_noise_rate_`` at least 0.2), or many labels wrong (``noise_rate_``
        at least 0.4). The fitted ``noisy_criterion_scope_`` says which was used. ``None``:
        the preset's (``"auto"`` for ``"default"``, ``"all"`` for ``"paper"`` and
        ``"official"``, which never switch). On the noise panel and 13 held-out sets (20 and
        60 epochs), ``"auto"`` met issue 12's goal 1 in 132 of 223 cells against 124 for
        ``"all"`` (``benchmarks/results/noise_panel_notes.md``, eighth round).
    warmup_epochs : int, default=None
        Epochs of training on all data before the first selection. ``None``: the preset's (5).
    select_every : int, default=None
        Re-select every this many epochs after warm-up. ``None``: the preset's (1).
    gradient : {"logits", "penultimate"}, default=None
        Gradient features to cluster: ``"logits"``, ``softmax(z) - onehot(y)`` (the paper);
        ``"penultimate"``, the loss gradient with respect to the input of the module's last
        ``nn.Linear`` (the official code), computed in closed form from a forward hook.
    group_by : {"label", "prediction"}, default=None
        Select within groups of the same noisy label, or of the same predicted class (the
        paper's best ablation).
    selection_optimizer : {"lazy", "naive", "stochastic", "centrality"}, default=None
        :class:`~sk_crust.CrustSelector`'s ``optimizer``: exact facility location (``"lazy"``,
        the paper), or the most central points (``"centrality"``, what the official code's greedy
        computes).
    selection_weights : {"cluster", "radius", "uniform"}, default=None
        :class:`~sk_crust.CrustSelector`'s ``weights``. The loss of a batch is the weighted mean
        of its examples' losses, so only relative weights matter.
    mixup : {"cluster", "class", "none"}, default=None
        Mixup on coreset epochs. ``"cluster"`` (the paper): each selected example is mixed with a
        random member of its cluster, and so are the labels. ``"class"`` (the official code):
        mixed with a random training example of the same noisy label, labels not mixed.
        One lambda per batch.
    mixup_alpha : float or (float, float), default=None
        lambda ~ Beta(a, a) for a float ``a``, Beta(a, b) for a pair. ``None``: the preset's
        ((1, 1) for ``"paper"``, (1, 0.1) for ``"official"``).
    preset : {"default", "paper", "official"}, default="default"
        Resolves every CRUST parameter left at ``None``: ``"paper"`` = the NeurIPS paper (group by
        prediction, logit gradients, exact facility location, cluster weights, cluster mixup);
        ``"official"`` = the authors' code (group by label, penultimate gradients, centrality,
        radius weights, class mixup with Beta(1, 0.1), warm-up 5), both with
        ``coreset_size=0.5``; ``"default"`` = what held best across a panel of 14 data sets at
        every noise level (``benchmarks/results/noise_panel.md``): ``coreset_size="auto"``,
        ``unselected_weight=0.3``, ``noisy_criterion="sce"``, group by label, logit gradients,
        centrality, uniform weights, cluster mixup with Beta(1, 1). All use
        ``warmup_epochs=5`` and ``select_every=1``. The resolved values are in
        ``crust_config_``.
    random_state : int or None, default=None
        Seeds the weight initialisation and dropout (on the net's own fork of torch's generator:
        the caller's global torch RNG is left as it was), the selector, the training order and
        mixup, so that two fits with the same value give the same model on CPU.
    **kwargs
        Any other :class:`~skorch.classifier.NeuralNetClassifier` parameter (``max_epochs``,
        ``batch_size``, ``train_split``, ``callbacks``, ``device``, ``module__*``, ...). With a
        CUDA ``device`` the selection runs there too (:class:`~sk_crust.CrustSelector`'s
        ``device``).

    Attributes
    ----------
    coreset_indices_ : ndarray of shape (n_selected,)
        Rows of the ``X`` passed to ``fit`` selected at the last selection (the medoids; the
        whole training split when the coreset fraction is 1, or if training stopped before the
        first selection).
    coreset_weights_ : ndarray of shape (n_selected,)
        Their weights (cluster sizes with ``selection_weights="cluster"``).
    crust_config_ : dict
        The CRUST parameters in effect (the preset with the user's values on top).
    noise_rate_ : float
        With ``coreset_size="auto"`` only: the estimated fraction of wrong training labels:
        :func:`~sk_crust.estimate_noise_rate` with ``method="spread"`` on the predictions
        after warm-up, plus ``concentrated_noise_rate_`` when that is at least 0.2; also in
        ``history`` as ``noise_rate``.
    concentrated_noise_rate_ : float
        With ``coreset_size="auto"`` only: the estimated fraction of labels moved to one other
        class beyond the spread background (``method="concentrated"``, the same
        predictions), whether or not it reached 0.2; also in ``history`` as
        ``concentrated_noise_rate``.
    noisy_criterion_scope_ : {"unselected", "all"}
        Once ``noisy_criterion`` has replaced cross entropy: the examples it trains (see
        ``noisy_criterion_scope``). Absent while training is plain cross entropy.
    coreset_fraction_ : float
        With ``coreset_size="auto"`` only: the coreset fraction used, ``1 - noise_rate_``
        clipped to [0.1, 1], the same for every class (unlike the sampler's two-class rule:
        see the user guide).
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    n_features_in_ : int
        Features of ``X`` at fit (when ``X`` is array-like).
    history : skorch History
        Per epoch, besides skorch's entries: ``coreset_size`` (examples trained on that epoch),
        ``selection_seconds`` (gradient features and selection; 0 when no selection ran),
        ``feature_seconds`` (the gradient-feature pass alone) and ``selection_objective`` (NaN
        when no selection ran).

    See Also
    --------
    CrustSelector : the selection alone, on gradient features you already have.
    CoresetCleanFraction : callback recording how clean the coreset is, when true labels are known.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from sk_crust import CrustClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:300] / 16, y[:300]
    >>> net = CrustClassifier("mlp", max_epochs=4, warmup_epochs=2, train_split=None,
    ...                       verbose=0, random_state=0).fit(X, y)
    >>> net.predict(X[:5]).shape, net.predict_proba(X[:5]).shape
    ((5,), (5, 10))
    >>> net.history[:, "coreset_size"]  # clean labels: "auto" keeps every example
    [300, 300, 300, 300]
    """

    def __init__(self, module="mlp", *, criterion=torch.nn.CrossEntropyLoss,
                 optimizer=torch.optim.Adam, lr: float = 1e-3,
                 coreset_size: float | int | str | None = None,
                 unselected_weight: float | None = None, noisy_criterion=None,
                 noisy_criterion_scope: str | None = None, warmup_epochs: int | None = None,
                 select_every: int | None = None, gradient: str | None = None,
                 group_by: str | None = None, selection_optimizer: str | None = None,
                 selection_weights: str | None = None, mixup: str | None = None,
                 mixup_alpha: float | tuple[float, float] | None = None,
                 preset: str = "default", random_state: int | None = None, **kwargs):
        super().__init__(module, criterion=criterion, optimizer=optimizer, lr=lr, **kwargs)
        self.coreset_size = coreset_size
        self.unselected_weight = unselected_weight
        self.noisy_criterion = noisy_criterion
        self.noisy_criterion_scope = noisy_criterion_scope
        self.warmup_epochs = warmup_epochs
        self.select_every = select_every
        self.gradient = gradient
        self.group_by = group_by
        self.selection_optimizer = selection_optimizer
        self.selection_weights = selection_weights
        self.mixup = mixup
        self.mixup_alpha = mixup_alpha
        self.preset = preset
        self.random_state = random_state

    # ------------------------------------------------------------------ skorch components
    @property
    def _default_callbacks(self):
        return [
            ("epoch_timer", EpochTimer()),
            ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
            ("valid_loss", PassthroughScoring(name="valid_loss")),
            ("valid_acc", EpochScoring(_encoded_accuracy, name="valid_acc",
                                       lower_is_better=False)),
            ("print_log", PrintLog()),
        ]

    def initialize_module(self):
        """Instantiate the module; sizes of the built-in modules come from the data at fit."""
        kwargs = self.get_params_for("module")
        module = self.module
        if isinstance(module, str):
            if module.lower() not in MODULES:
                raise ValueError(f"module={module!r} is not valid: pass a torch module class or "
                                 f"instance, or one of {sorted(MODULES)}")
            module = MODULES[module.lower()]
        if isinstance(module, type) and issubclass(module, (MLP, SmallCNN)):
            kwargs = {**self._inferred_module_kwargs(module, kwargs), **kwargs}
        self.module_ = self.initialized_instance(module, kwargs)
        return self

    def _inferred_module_kwargs(self, module: type, given: dict) -> dict:
        info = getattr(self, "_data_info_", None) or {}
        wanted = ("n_features", "n_classes") if issubclass(module, MLP) else ("n_classes",
                                                                                "in_channels")
        inferred = {k: info[k] for k in wanted if k in info}
        missing = [k for k in wanted if k not in inferred and k not in given
                   and not (k == "in_channels")]
        if missing:
            raise ValueError(
                f"{module.__name__} needs {', '.join(missing)}, which are inferred from array "
                f"data at fit: call fit with array-like X and y, or pass "
                f"{', '.join('module__' + k for k in missing)}")
        return inferred

    def initialize_criterion(self):
        """Instantiate the criterion with ``reduction="none"``: ``get_loss`` applies weights."""
        super().initialize_criterion()
        criterion = self.criterion_
        if getattr(criterion, "reduction", "none") != "none":
            if criterion is self.criterion:  # the user's own instance: leave it as it was
                criterion = copy.deepcopy(criterion)
            criterion.reduction = "none"
            self.criterion_ = criterion
        return self

    def get_params_for_optimizer(self, prefix, named_parameters):
        """skorch's optimizer arguments, with torch's fused kernel for Adam and AdamW.

        ``fused=True`` is the same update rule in one kernel per step (half the step's time for
        a small MLP, see :mod:`sk_crust._optim`); pass ``optimizer__fused=False`` (or any
        ``optimizer__foreach``) to keep torch's default kernels.
        """
        args, kwargs = super().get_params_for_optimizer(prefix, named_parameters)
        if prefix == "optimizer" and use_fused(self.optimizer, args[0], kwargs):
            kwargs["fused"] = True
        return args, kwargs

    # ------------------------------------------------------------------ fit / predict
    def fit(self, X, y=None, **fit_params) -> CrustClassifier:
        """Initialize the module and train it, alternating coreset selection and training.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...) or torch Dataset
            Array-likes (NumPy, pandas, tensors) are cast to float32; a Dataset is used as is.
        y : array-like of shape (n_samples,)
            Labels, possibly noisy; any hashable values.
        **fit_params : dict
            Passed to skorch (module ``forward`` and ``train_split``).

        Returns
        -------
        self : CrustClassifier
        """
        X, y = self._prepare_fit_data(X, y, reset=True)
        self._fitting_ = True
        try:
            with self._torch_rng(reset=True):
                return super().fit(X, y, **fit_params)
        finally:
            self._fitting_ = False

    def partial_fit(self, X, y=None, classes=None, **fit_params) -> CrustClassifier:
        """Continue training for ``max_epochs`` epochs (see :meth:`fit`).

        ``classes`` fixes the label set on the first call, as in scikit-learn.
        """
        if getattr(self, "_fitting_", False):  # called by fit, which prepared everything
            return super().partial_fit(X, y, classes=classes, **fit_params)
        reset = not self.initialized_
        X, y = self._prepare_fit_data(X, y, reset=reset, classes=classes)
        with self._torch_rng(reset=reset):
            return super().partial_fit(X, y, classes=classes, **fit_params)

    @contextmanager
    def _torch_rng(self, *, reset: bool):
        """With ``random_state``: run on the net's own torch RNG stream, not the user's.

        torch draws initial weights and dropout masks from its global generator. Seeding it would
        reseed the caller's stream too, so the global state is forked for the call: seeded from
        ``random_state`` on a fresh fit, restored from where the last call stopped on a
        continued ``partial_fit``, and the caller's state is put back afterwards.
        """
        if self.random_state is None:
            yield
            return
        devices = []
        if self.device is not None and torch.device(self.device).type == "cuda":
            devices = [torch.device(self.device).index or 0]
        with torch.random.fork_rng(devices=devices):
            state = getattr(self, "_torch_rng_state_", None)
            if reset or state is None:
                torch.manual_seed(self.random_state)
            else:
                torch.set_rng_state(state[0])
                for device, device_state in zip(devices, state[1], strict=True):
                    torch.cuda.set_rng_state(device_state, device)
            try:
                yield
            finally:
                self._torch_rng_state_ = (torch.get_rng_state(),
                                          [torch.cuda.get_rng_state(d) for d in devices])

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (softmax of the logits), columns in ``classes_`` order.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...) or torch Dataset

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        return super().predict_proba(self._prepare_X(X, reset=False))

    def _get_predict_nonlinearity(self):
        # skorch's "auto" applies a softmax for CrossEntropyLoss only; the module returns logits
        # whatever the criterion (this class's contract), so probabilities are always a softmax.
        if isinstance(self.predict_nonlinearity, str) and self.predict_nonlinearity == "auto":
            self.check_is_fitted()
            return softmax_rows
        return super()._get_predict_nonlinearity()

    def predict(self, X) -> np.ndarray:
        """Predicted labels (values of ``classes_``).

        Parameters
        ----------
        X : array-like of shape (n_samples, ...) or torch Dataset

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        index = self.predict_proba(X).argmax(axis=1)
        try:
            return np.asarray(self.classes_)[index]
        except AttributeError:  # trained on a Dataset without labels skorch could read
            return index

    def check_data(self, X, y):
        super().check_data(X, y)
        # skorch infers classes_ from the (encoded) y it sees; keep the original labels.
        if getattr(self, "_fit_classes_", None) is not None:
            self.classes_inferred_ = self._fit_classes_

    def _prepare_X(self, X, *, reset: bool):
        # (scipy's dok_matrix is a dict: keep it on the array path, which refuses sparse X.)
        if is_dataset(X) or (isinstance(X, dict) and not hasattr(X, "tocsr")):
            return X
        # skorch would read a DataFrame as a dict of columns; scikit-learn users mean a matrix.
        X = validate_data(self, X, reset=reset, dtype=np.float32, allow_nd=True)
        # pandas (copy-on-write) can hand out read-only views, which torch warns about.
        return X if X.flags.writeable else X.copy()

    def _prepare_fit_data(self, X, y, *, reset: bool, classes=None):
        self.crust_config_ = self._resolve_config()
        X = self._prepare_X(X, reset=reset)
        if reset:
            self._fit_classes_ = None
            self._data_info_ = {}
            if not is_dataset(X) and not isinstance(X, dict):
                self._data_info_ = {"n_features": int(np.prod(X.shape[1:])),
                                    "in_channels": int(X.shape[1]) if X.ndim == 4 else 1}
            self._rng_ = np.random.default_rng(self.random_state)
        if y is None:
            if not is_dataset(X) and not isinstance(X, dict):
                raise ValueError("CrustClassifier requires y to be passed, but the target y is "
                                 "None: pass the labels, or a Dataset that yields (X, y) pairs")
            return X, y
        y = column_or_1d(y, warn=True)
        if not is_dataset(X) and not isinstance(X, dict):
            check_consistent_length(X, y)
        check_label_targets(y)
        if reset:
            if classes is None and self.classes is not None and len(self.classes):
                classes = self.classes
            self._fit_classes_ = np.unique(y) if classes is None else np.asarray(classes)
            self.classes_inferred_ = self._fit_classes_
            self._data_info_["n_classes"] = len(self._fit_classes_)
        if self._fit_classes_ is None:
            return X, y
        return X, encode_labels(y, self._fit_classes_)

    def _resolve_config(self) -> dict:
        """The preset with the user's non-None values on top, validated."""
        if not isinstance(self.preset, str) or self.preset not in PRESETS:
            raise ValueError(f"preset={self.preset!r} is not valid: pass one of "
                             f"{sorted(PRESETS)}")
        config = {name: (PRESETS[self.preset][name] if getattr(self, name) is None
                         else getattr(self, name)) for name in _CRUST_PARAMS}
        size = config["coreset_size"]
        if not (is_fraction(size) or is_int(size, 1) or (isinstance(size, str)
                                                           and size == "auto")):
            raise ValueError(f"coreset_size={size!r} is not valid: pass a float in (0, 1] "
                             "(fraction of each group), an int >= 1 (total coreset size) or "
                             "'auto' (the estimated clean fraction)")
        weight = config["unselected_weight"]
        if not (isinstance(weight, Real) and not isinstance(weight, bool) and 0 <= weight <= 1):
            raise ValueError(f"unselected_weight={weight!r} is not valid: pass a float in [0, 1] "
                             "(0 drops the examples outside the coreset, as the paper does)")
        noisy = config["noisy_criterion"]
        if not (isinstance(noisy, type) or (isinstance(noisy, str) and noisy in NOISY_CRITERIA)):
            raise ValueError(f"noisy_criterion={noisy!r} is not valid: pass one of "
                             f"{list(NOISY_CRITERIA)} or a loss class (called with "
                             "reduction='none')")
        if not is_int(config["warmup_epochs"], 0):
            raise ValueError(f"warmup_epochs={config['warmup_epochs']!r} is not valid: pass an "
                             "int >= 0")
        if not is_int(config["select_every"], 1):
            raise ValueError(f"select_every={config['select_every']!r} is not valid: pass an "
                             "int >= 1")
        for name, accepted in (("noisy_criterion_scope", NOISY_SCOPES),
                               ("gradient", GRADIENTS), ("group_by", GROUP_BY),
                               ("selection_optimizer", OPTIMIZERS),
                               ("selection_weights", WEIGHTS), ("mixup", MIXUPS)):
            check_choice(name, config[name], accepted)
        config["mixup_alpha"] = beta_parameters(config["mixup_alpha"])
        if self.random_state is not None and not is_int(self.random_state, 0):
            raise ValueError(f"random_state={self.random_state!r} is not valid: pass None or "
                             "an int >= 0")
        return config

    # ------------------------------------------------------------------ training hooks
    def get_iterator(self, dataset, training: bool = False):
        """Batches of ``dataset``: index-gathered for in-memory data, else skorch's DataLoader.

        For training, the iterator follows a sampler over the current coreset (changed between
        epochs), and the state of this ``fit``/``partial_fit`` call is created with it: skorch
        builds the training iterator once per call, from the training split.
        """
        kwargs, user_batch = self._iterator_kwargs(
            "iterator_train" if training else "iterator_valid", dataset)
        if not training:
            return self._evaluation_iterator(dataset, kwargs, user_batch,
                                             drop_last=kwargs.get("drop_last", False))
        for key in ("sampler", "batch_sampler"):
            if key in kwargs:
                raise ValueError(f"iterator_train__{key} cannot be used with CrustClassifier: "
                                 "it decides which examples each epoch sees")
        shuffle = kwargs.pop("shuffle", True)
        if getattr(self, "_rng_", None) is None:
            self._rng_ = np.random.default_rng(self.random_state)
        sampler = SubsetSampler(len(dataset), self._rng_, shuffle=bool(shuffle))
        data = in_memory(dataset) if fast_path_kwargs(self.iterator_train, kwargs) else None
        if data is not None and data.y is None:
            data = None
        self._run_ = Run(dataset, sampler, kwargs.get("collate_fn", default_collate), data)
        if data is not None:
            return IndexBatches(data, sampler, kwargs["batch_size"], kwargs.get("drop_last", False))
        return self.iterator_train(dataset, sampler=sampler, **kwargs)

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        super().on_train_begin(net, X=X, y=y, **kwargs)
        self._run_ = None
        self._batch_ = None
        self._outputs_checked_ = False

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        """Start a history row, then train on all data, select a coreset or keep the last one."""
        super().on_epoch_begin(net, dataset_train=dataset_train, dataset_valid=dataset_valid,
                               **kwargs)
        run = getattr(self, "_run_", None)
        if run is None or run.dataset is not dataset_train:
            return  # not our training loop (e.g. a custom fit_loop without our iterator)
        config = self.crust_config_
        kept = getattr(self, "_coreset_", None)
        if kept is not None and kept.key != run.key:
            kept = None  # selected on other data (an earlier partial_fit)
        schedule = Schedule(config["warmup_epochs"], config["select_every"])
        action = schedule.action(len(self.history),
                                 has_coreset=run.coreset is not None or kept is not None)
        feature_seconds = seconds = 0.0
        objective = math.nan
        if action == "all":
            run.use_all()
        elif action == "select":
            start = time.perf_counter()
            objective, feature_seconds = self._select(run)
            seconds = time.perf_counter() - start
        elif run.coreset is None:  # keep the coreset of an earlier partial_fit on this data
            run.use(kept)
        self.history.record("coreset_size", int(len(run.sampler)))
        self.history.record("selection_seconds", seconds)
        self.history.record("feature_seconds", feature_seconds)
        self.history.record("selection_objective", objective)

    def _select(self, run: Run) -> tuple[float, float]:
        """Compute gradient features of the training split and select its coreset.

        Returns the selection objective and the seconds the feature pass took.
        """
        config = self.crust_config_
        size = config["coreset_size"]
        if isinstance(size, str):  # "auto"
            size = self._auto_coreset_size(run)
            self._switch_criterion(config["noisy_criterion"])
        if is_int(size, 1) and size > run.n:
            raise ValueError(f"coreset_size={size} is larger than the {run.n} training examples")
        if is_fraction(size) and size >= 1.0:
            # A coreset of every example, each its own medoid, is plain training.
            run.use_all()
            self.coreset_indices_ = run.fit_index.copy()
            self.coreset_weights_ = np.ones(run.n)
            return math.nan, 0.0
        start = time.perf_counter()
        features = self._gradient_features(run.dataset)
        feature_seconds = time.perf_counter() - start
        if not np.isfinite(features.features).all():
            raise ValueError(
                f"the gradient features are not finite (NaN or inf) at epoch {len(self.history)}"
                f": training diverged; pass a lower lr (lr={self.lr!r} now), scale X, or check "
                "the module")
        run.y = features.y
        groups = features.y if config["group_by"] == "label" else features.prediction
        selector = CrustSelector(
            k=size, optimizer=config["selection_optimizer"], weights=config["selection_weights"],
            random_state=int(self._rng_.integers(np.iinfo(np.int32).max)),
            # A CUDA net selects on its GPU too: the similarity rows' matrix products dominate.
            device=self.device if self.device is not None
            and torch.device(self.device).type == "cuda" else None)
        selector._fit(features.features, groups, diagnostics=False)  # this net reads none
        medoids = selector.indices_
        weights = selector.sample_weight_.astype(np.float32)
        positions = np.sort(medoids)
        selected = None
        if config["unselected_weight"] > 0:
            weights = _weigh_unselected(weights, medoids, groups, config["unselected_weight"])
            positions = np.arange(run.n)
            if getattr(self, "_trusted_criterion_", None) is not None:
                selected = np.zeros(run.n, dtype=bool)
                selected[medoids] = True
        partners = MIXUPS[config["mixup"]].partners(medoids, selector.labels_, run.y)
        self._coreset_ = Coreset(positions, weights, partners, run.key, selected)
        run.use(self._coreset_)
        self.coreset_indices_ = run.fit_index[medoids]
        self.coreset_weights_ = selector.weights_
        return float(selector.objective_), feature_seconds

    def _auto_coreset_size(self, run: Run) -> float:
        """``coreset_size="auto"``: 1 - the noise rate estimated at the first selection.

        The estimate is the ``"spread"`` count of :func:`~sk_crust.estimate_noise_rate` on the
        training split's predicted probabilities right after warm-up, before the network has
        memorised the wrong labels (the confident joint's total counted the warm-up model's
        errors on hard, correct labels as noise: 0.33 on clean vowel), plus the
        ``"concentrated"`` count when it reaches ``CONCENTRATED_NOISE_FROM``; it is kept for the
        rest of training (and ``partial_fit``).
        """
        from ._noise_estimation import auto_fraction, auto_noise_parts, residual_proba

        if getattr(self, "noise_rate_", None) is None:
            iterator = self._feature_iterator(run.dataset)
            self._set_training(False)
            logits = _gradient_features(self.infer, (unpack_data(b) for b in iterator), run.n,
                                        kind="logits")
            proba = residual_proba(logits.features, logits.y)
            self.noise_rate_, _, self.concentrated_noise_rate_ = auto_noise_parts(logits.y,
                                                                                  proba)
            self._estimated_classes_ = proba.shape[1]
            # One fraction for every class, also with two: per-class rates from the warm-up
            # model's in-sample probabilities emptied a class on data no panel uses (titanic,
            # 40% noise: -0.22; see the user guide); the sampler's out-of-fold ones did not.
            self.coreset_fraction_ = auto_fraction(self.noise_rate_)
        self.history.record("noise_rate", self.noise_rate_)
        self.history.record("concentrated_noise_rate",
                            getattr(self, "concentrated_noise_rate_", math.nan))
        return self.coreset_fraction_

    def _switch_criterion(self, noisy) -> None:
        """Replace the default cross entropy by ``noisy`` once the estimate reads noise.

        With ``noisy_criterion_scope`` ``"unselected"`` (or ``"auto"`` without
        class-conditional noise) the cross entropy is kept, as ``_trusted_criterion_``, for
        the medoids.
        """
        loss = NOISY_CRITERIA.get(noisy) if isinstance(noisy, str) else noisy
        if (loss is None or self.noise_rate_ < NOISY_CRITERION_FROM
                or self.criterion is not torch.nn.CrossEntropyLoss
                or isinstance(self.criterion_, loss)):
            return
        scope = self.crust_config_["noisy_criterion_scope"]
        if scope == "auto":
            scope = "unselected" if self._coreset_trusted() else "all"
        self.noisy_criterion_scope_ = scope
        # In a tuple: skorch refuses a torch module set as an attribute outside initialize.
        self._trusted_criterion_ = (self.criterion_,) if scope == "unselected" else None
        criterion = loss(reduction="none")
        self.criterion_ = criterion.to(self.device) if isinstance(criterion, torch.nn.Module) \
            else criterion

    def _coreset_trusted(self) -> bool:
        """``noisy_criterion_scope="auto"``: may the medoids keep cross entropy?

        Not when wrong labels may form a dense cluster of their own, which the selection can
        take for clean: labels moved to one other class (the concentrated estimate reaches
        ``CONCENTRATED_NOISE_FROM``), or two classes (every wrong label then comes from the
        one other class, which the concentrated estimate cannot see); nor when many labels
        look wrong (``noise_rate_`` at least ``TRUSTED_NOISE_BELOW``), where coresets were
        a quarter wrong or worse (``benchmarks/results/noise_panel.md``).
        """
        concentrated = getattr(self, "concentrated_noise_rate_", None) or 0.0
        return (getattr(self, "_estimated_classes_", 0) >= 3
                and self.noise_rate_ < TRUSTED_NOISE_BELOW
                and concentrated < CONCENTRATED_NOISE_FROM)

    def get_label_issues(self, X, y):
        """Rank samples by how likely their label is wrong, most suspicious first.

        skorch nets do not keep their training data, so pass it again (or any labelled data).
        The score is the norm of the loss gradient with respect to the logits,
        ``||softmax(z) - onehot(y)||`` (between 0 and sqrt(2)): large when the network, trained
        on clean coresets, confidently predicts another class than the given one. A selection
        with the net's CRUST settings is run on the data's gradient features to report which
        samples would be in the coreset, with their weights and medoid distances.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
        y : array-like of shape (n_samples,)
            Given (possibly noisy) labels, values of ``classes_``.

        Returns
        -------
        issues : pandas.DataFrame
            Indexed by sample position, sorted by decreasing ``suspicion``, with columns
            ``given_label``, ``predicted_label``, ``predicted_proba_of_given`` (the predicted
            probability of the given label), ``gradient_norm``, ``medoid_distance``,
            ``selected``, ``weight`` and ``suspicion`` (the gradient norm).

        Examples
        --------
        >>> import numpy as np
        >>> from sk_crust import CrustClassifier
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(200, 2)).astype(np.float32)
        >>> y = (X[:, 0] > 0).astype(int)
        >>> y[:10] = 1 - y[:10]  # ten wrong labels
        >>> net = CrustClassifier(max_epochs=20, lr=0.01, train_split=None, verbose=0,
        ...                       random_state=0).fit(X, y)
        >>> issues = net.get_label_issues(X, y)
        >>> list(issues.columns)  # doctest: +NORMALIZE_WHITESPACE
        ['given_label', 'predicted_label', 'predicted_proba_of_given', 'gradient_norm',
         'medoid_distance', 'selected', 'weight', 'suspicion']
        >>> int(np.sum(issues.index[:10] < 10)) >= 8  # the wrong labels come first
        True
        """
        from ._reporting import classifier_label_issues

        return classifier_label_issues(self, X, y)

    def gradient_features(self, X, y=None) -> GradientFeatures:
        """Per-example gradient features, as the net computes them for selection.

        Computed in evaluation mode without gradients, batch by batch with the validation
        iterator (no shuffling), with ``crust_config_["gradient"]``.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...) or torch Dataset
            Data; a Dataset must yield ``(X, y)`` pairs with encoded labels.
        y : array-like of shape (n_samples,), default=None
            Labels (values of ``classes_``); required unless ``X`` is a Dataset.

        Returns
        -------
        GradientFeatures
            ``(features, y, prediction)``: an ``(n, d)`` float32 array (``d = n_classes`` for
            ``gradient="logits"``, the width of the last layer's input for ``"penultimate"``),
            the encoded labels and the predicted class positions.
        """
        self.check_is_fitted()
        if not is_dataset(X):
            if y is None:
                raise ValueError("gradient_features needs the labels y of array-like X")
            X = self.get_dataset(self._prepare_X(X, reset=False),
                                 encode_labels(column_or_1d(y), np.asarray(self.classes_)))
        return self._gradient_features(X)

    def _gradient_features(self, dataset) -> GradientFeatures:
        config = getattr(self, "crust_config_", None) or self._resolve_config()
        iterator = self._feature_iterator(dataset)
        self._set_training(False)
        return _gradient_features(self.infer, (unpack_data(b) for b in iterator), len(dataset),
                                  kind=config["gradient"], module=self.module_)

    def _evaluation_iterator(self, dataset, kwargs: dict, user_batch: bool, *,
                             drop_last: bool):
        """Evaluation batches in dataset order: slices of in-memory data, else skorch's path.

        Without a user ``iterator_valid__batch_size``, in-memory rows of at most ``_SMALL_ROW``
        values go in batches of at least ``_FEATURE_BATCH``: in evaluation mode an example's
        output does not depend on its batch (up to float rounding), and for tabular rows the
        per-batch overhead of small batches costs more than the forward pass itself (the
        validation pass of 6,000 rows of 64 values ran 47 batches of 128 every epoch).
        ``drop_last`` keeps the user's batch size, so that the same rows are left out.
        """
        if fast_path_kwargs(self.iterator_valid, kwargs) and not kwargs.get("shuffle"):
            data = in_memory(dataset)
            if data is not None:
                size = kwargs["batch_size"]
                if not (user_batch or drop_last or int(np.prod(data.X.shape[1:])) > _SMALL_ROW):
                    size = max(size, _FEATURE_BATCH)
                return SliceBatches(data, size, drop_last)
        return super().get_iterator(dataset, training=False)

    def _feature_iterator(self, dataset):
        """The evaluation iterator of the feature pass: every row, whatever ``drop_last``."""
        kwargs, user_batch = self._iterator_kwargs("iterator_valid", dataset)
        return self._evaluation_iterator(dataset, kwargs, user_batch, drop_last=False)

    def _iterator_kwargs(self, prefix: str, dataset) -> tuple[dict, bool]:
        """``prefix``'s parameters with the batch size resolved, and whether the user set it."""
        kwargs = self.get_params_for(prefix)
        user_batch = "batch_size" in kwargs
        kwargs.setdefault("batch_size", self.batch_size)
        if kwargs["batch_size"] == -1:
            kwargs["batch_size"] = len(dataset)
        return kwargs, user_batch

    def on_batch_begin(self, net, batch=None, training=False, **kwargs):
        """Find the batch's coreset weights and draw its mixup partners (once per batch)."""
        super().on_batch_begin(net, batch=batch, training=training, **kwargs)
        self._batch_ = None
        run = getattr(self, "_run_", None)
        if not training or run is None or run.coreset is None:
            return
        Xi, yi = unpack_data(batch)
        positions = run.sampler.take(len(yi))
        if run.data is None and not np.array_equal(to_numpy(yi).ravel(), run.y[positions]):
            raise RuntimeError(
                "the training iterator did not return the examples in the order of "
                "CrustClassifier's sampler: iterator_train must be a DataLoader-like class that "
                "honours its `sampler` argument")
        coreset = run.coreset
        weights = torch.from_numpy(coreset.weights[positions])
        partners = partner_X = partner_y = None
        lam = 1.0
        if coreset.partners is not None:
            if not (torch.is_tensor(Xi) and Xi.is_floating_point()):
                raise ValueError("mixup needs float tensor batches: pass mixup='none' for "
                                 "other inputs")
            if run.sampler.cursor == len(positions):  # the epoch's first batch
                # One vectorised draw for the epoch's order, not one per batch.
                run.partners = coreset.partners.groups.draw(
                    coreset.partners.group_of[run.sampler.order], self._rng_)
            start = run.sampler.cursor - len(positions)
            partners = run.partners[start:start + len(positions)]
            partner_X = run.gather_X(partners).to(Xi.device, Xi.dtype)
            lam = float(self._rng_.beta(*self.crust_config_["mixup_alpha"]))
            if MIXUPS[self.crust_config_["mixup"]].mixes_labels:
                partner_y = torch.from_numpy(run.y[partners])
        trusted = (None if coreset.selected is None
                   else torch.from_numpy(coreset.selected[positions]))
        self._batch_ = BatchPlan(positions, partners, weights, partner_X, partner_y, lam,
                                 trusted)

    def train_step_single(self, batch, **fit_params):
        """skorch's training step, fed with the mixed input when mixup is on."""
        plan = getattr(self, "_batch_", None)
        if plan is None or plan.partner_X is None:
            return super().train_step_single(batch, **fit_params)
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        X_mixed = mix(plan.lam, Xi, plan.partner_X)
        y_pred = self.infer(X_mixed, **fit_params)
        loss = self.get_loss(y_pred, yi, X=X_mixed, training=True)
        loss.backward()
        return {"loss": loss, "y_pred": y_pred}

    def get_loss(self, y_pred, y_true, X=None, training: bool = False):
        """Mean of the per-example losses, weighted by the coreset weights while training."""
        loss = self._mean_loss(y_pred, y_true, X, training)
        if training:
            # On the mean, not per example: a NaN or inf anywhere makes the mean NaN or inf.
            self._check_training_outputs(y_pred, loss)
        return loss

    def _mean_loss(self, y_pred, y_true, X, training: bool) -> torch.Tensor:
        plan = getattr(self, "_batch_", None) if training else None
        trusted = (getattr(self, "_trusted_criterion_", None) or (None,))[0]
        if plan is None or plan.trusted is None or trusted is None:
            return self._plan_mean(self.criterion_, y_pred, y_true, X, training, plan,
                                   None if plan is None else plan.weights)
        # The medoids train with the trusted criterion (cross entropy), the rest with the
        # noisy one: the batch's weighted mean, split by the weights' two parts.
        weights = plan.weights.to(torch.float64)
        total = weights.sum()
        loss = None
        for criterion, mask in ((trusted, plan.trusted), (self.criterion_, ~plan.trusted)):
            part = torch.where(mask, weights, 0.0)
            mass = part.sum()
            if mass > 0:
                term = self._plan_mean(criterion, y_pred, y_true, X, training, plan,
                                       part.to(plan.weights.dtype)) * (mass / total).item()
                loss = term if loss is None else loss + term
        return loss

    def _plan_mean(self, criterion, y_pred, y_true, X, training: bool, plan,
                   weights) -> torch.Tensor:
        """Mean of ``criterion`` over the batch, weighted by ``weights`` when training."""
        if plan is not None and plan.partner_y is not None:
            loss = _mixed_losses(criterion, y_pred, to_tensor(y_true, self.device),
                                 plan.partner_y.to(y_pred.device), plan.lam,
                                 sample_weight=weights)
            if loss is not None:
                return loss
        losses = self._losses_of(criterion, y_pred, y_true, X, training)
        if losses.dim() == 0:  # a custom criterion that reduces by itself
            if plan is not None:
                raise ValueError("CrustClassifier needs per-example losses: the criterion must "
                                 "accept reduction='none'")
            return losses
        if plan is None:
            return losses.mean()
        if plan.partner_y is not None:
            partner_losses = self._losses_of(criterion, y_pred, plan.partner_y, X, training)
            losses = plan.lam * losses + (1.0 - plan.lam) * partner_losses
        return self._weighted_mean(losses, weights)

    def _losses_of(self, criterion, y_pred, y_true, X, training: bool) -> torch.Tensor:
        """skorch's loss for ``criterion_``; another criterion is called on the logits."""
        if criterion is self.criterion_:
            return super().get_loss(y_pred, y_true, X=X, training=training)
        return criterion(y_pred, to_tensor(y_true, device=self.device))

    @staticmethod
    def _weighted_mean(losses: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        weights = weights.to(device=losses.device, dtype=losses.dtype)
        return (losses * weights).sum() / weights.sum().clamp_min(torch.finfo(losses.dtype).tiny)

    def _check_training_outputs(self, y_pred, loss) -> None:
        """Stop on a non-finite loss; warn once per fit if the module returns probabilities."""
        # One scalar read (a sync, as bool() of a tensor is): torch.isfinite + all + bool cost
        # three kernels, 18 us of every training step of a small network.
        finite = (math.isfinite(loss.item()) if loss.dim() == 0
                  else bool(torch.isfinite(loss.detach()).all()))
        if not finite:
            raise ValueError(
                f"the training loss is not finite (NaN or inf) at epoch {len(self.history)}: "
                f"training diverged; pass a lower lr (lr={self.lr!r} now), scale X, or check "
                "the module")
        if getattr(self, "_outputs_checked_", True):
            return
        self._outputs_checked_ = True
        out = y_pred.detach() if torch.is_tensor(y_pred) else None
        if (out is not None and out.dim() == 2 and out.shape[1] > 1 and out.is_floating_point()
                and bool(((out >= 0) & (out <= 1)).all())
                and bool(torch.allclose(out.sum(dim=1), torch.ones_like(out[:, 0]),
                                        atol=1e-4))):
            warnings.warn(
                "module outputs look like probabilities (in [0, 1], rows summing to 1), but "
                "CrustClassifier expects logits: remove the final softmax from the module",
                UserWarning, stacklevel=2)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        super().on_train_end(net, X=X, y=y, **kwargs)
        run = getattr(self, "_run_", None)
        if run is not None and run.coreset is None and not hasattr(self, "coreset_indices_"):
            # Training ended before the first selection: the coreset is all training data.
            self.coreset_indices_ = run.fit_index.copy()
            self.coreset_weights_ = np.ones(run.n)
        # The run holds the training data: don't keep (or pickle) it.
        self._run_ = None
        self._batch_ = None

    def initialize(self):
        # A fresh model has no coreset yet.
        for name in ("coreset_indices_", "coreset_weights_", "noise_rate_",
                     "concentrated_noise_rate_", "coreset_fraction_", "_coreset_",
                     "noisy_criterion_scope_", "_trusted_criterion_", "_estimated_classes_"):
            self.__dict__.pop(name, None)
        return super().initialize()

    def training_samples(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Rows of ``X`` and weights that the current epoch trains on, for callbacks.

        During ``fit``: all training rows with weight 1 in warm-up, the coreset and its weights
        after. Outside ``fit`` (the net keeps no data): ``None``.

        Returns
        -------
        (rows, weights) : tuple of ndarray, or None
            ``rows`` index the ``X`` passed to ``fit`` (the training split only).
        """
        run = getattr(self, "_run_", None)
        return None if run is None else run.epoch_samples()
