"""CrustClassifier: the schedule, weights and mixup wiring, scikit-learn and skorch integration."""

import pickle

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skorch import NeuralNetClassifier
from skorch.callbacks import Checkpoint, EarlyStopping, ProgressBar
from skorch.dataset import Dataset, ValidSplit
from torch.utils.data import DataLoader

from sk_crust import CoresetCleanFraction, CrustClassifier, _classifier, add_label_noise
from sk_crust._classifier import PRESETS
from sk_crust._mixup import BatchPlan as _BatchPlan
from sk_crust._selector import CrustSelector
from sk_crust.modules import MLP, SmallCNN

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X[:300] / 16).astype(np.float32), y[:300]


def _net(module="mlp", **kwargs):
    # The selection mechanics at a fixed half (the default's size depends on the data).
    params = dict(coreset_size=0.5, unselected_weight=0.0,
                  max_epochs=4, warmup_epochs=1, train_split=None, verbose=0, random_state=0,
                  batch_size=64)
    params.update(kwargs)
    return CrustClassifier(module, **params)


class _RecordingSelector(CrustSelector):
    """Keeps every fitted selector, to compare what training did with what was selected."""

    fitted: list = []

    def _fit(self, G, y, **kwargs):  # CrustClassifier calls the private _fit (no diagnostics)
        super()._fit(G, y, **kwargs)
        type(self).fitted.append(self)
        return self


@pytest.fixture
def selectors(monkeypatch):
    _RecordingSelector.fitted = []
    monkeypatch.setattr(_classifier, "CrustSelector", _RecordingSelector)
    return _RecordingSelector.fitted


class _Spy(CrustClassifier):
    """Records, per training forward, the input the module got and the batch's plan."""

    def infer(self, x, **fit_params):
        if self.module_.training:
            self.seen_.append((len(self.history), x.detach().clone(), self._batch_))
        return super().infer(x, **fit_params)

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.seen_ = []
        super().on_train_begin(net, X=X, y=y, **kwargs)


# ---------------------------------------------------------------- the schedule
@pytest.mark.parametrize("warmup, every, epochs, selected", [
    (2, 1, 5, [3, 4, 5]),
    (2, 2, 7, [3, 5, 7]),
    (0, 3, 5, [1, 4]),
    (5, 1, 3, []),
])
def test_selection_runs_on_scheduled_epochs_only(digits, selectors, warmup, every, epochs,
                                                 selected):
    X, y = digits
    net = _net(warmup_epochs=warmup, select_every=every, max_epochs=epochs).fit(X, y)
    history = net.history
    ran = [row["epoch"] for row in history if not np.isnan(row["selection_objective"])]
    assert ran == selected
    assert len(selectors) == len(selected)
    for row in history:
        assert (row["selection_seconds"] > 0) == (row["epoch"] in selected)
        in_warmup = row["epoch"] <= warmup
        assert (row["coreset_size"] == len(X)) == in_warmup
    if selected:
        np.testing.assert_array_equal(net.coreset_indices_, selectors[-1].indices_)
        np.testing.assert_array_equal(net.coreset_weights_, selectors[-1].weights_)
    else:  # stopped before the first selection: all training data
        np.testing.assert_array_equal(net.coreset_indices_, np.arange(len(X)))
        np.testing.assert_array_equal(net.coreset_weights_, np.ones(len(X)))


def test_each_coreset_epoch_trains_once_on_each_coreset_example_with_its_weight(digits,
                                                                                 selectors):
    X, y = digits
    net = _Spy("mlp", coreset_size=0.5, unselected_weight=0.0,
               max_epochs=4, warmup_epochs=1, select_every=2, mixup="none",
               selection_weights="cluster", train_split=None, verbose=0, random_state=0,
               batch_size=32).fit(X, y)
    assert len(selectors) == 2  # epochs 2 and 4; epoch 3 reuses the coreset of epoch 2
    for epoch, selector in ((2, selectors[0]), (3, selectors[0]), (4, selectors[1])):
        plans = [plan for e, _, plan in net.seen_ if e == epoch]
        positions = np.concatenate([plan.positions for plan in plans])
        np.testing.assert_array_equal(np.sort(positions), np.sort(selector.indices_))
        weights = torch.cat([plan.weights for plan in plans]).numpy()
        np.testing.assert_allclose(weights, selector.sample_weight_[positions])
        # The module saw exactly those rows.
        inputs = torch.cat([x for e, x, _ in net.seen_ if e == epoch]).numpy()
        np.testing.assert_array_equal(inputs, X[positions])
    warmup_plans = [plan for e, _, plan in net.seen_ if e == 1]
    assert warmup_plans and all(plan is None for plan in warmup_plans)


def test_partial_fit_continues_the_schedule(digits):
    X, y = digits
    net = _net(max_epochs=2, warmup_epochs=2)
    net.partial_fit(X, y)
    net.partial_fit(X, y)
    assert net.history[:, "epoch"] == [1, 2, 3, 4]
    assert net.history[:, "coreset_size"][:2] == [len(X)] * 2
    assert all(size < len(X) for size in net.history[:, "coreset_size"][2:])


# ---------------------------------------------------------------- the weighted loss
def test_weighted_loss_equals_hand_computation_and_zero_weight_has_no_gradient(digits):
    X, y = digits
    net = _net(max_epochs=1).fit(X, y)
    torch.manual_seed(0)
    y_pred = torch.randn(4, 10, requires_grad=True)
    y_true = torch.tensor([0, 3, 3, 7])
    weights = torch.tensor([1.0, 0.0, 3.0, 0.5])
    per_example = torch.nn.functional.cross_entropy(y_pred, y_true, reduction="none")
    net._batch_ = _BatchPlan(np.arange(4), None, weights, None, None, 1.0)
    loss = net.get_loss(y_pred, y_true, training=True)
    torch.testing.assert_close(loss, (per_example * weights).sum() / weights.sum())
    loss.backward()
    assert torch.all(y_pred.grad[1] == 0) and torch.all(y_pred.grad[[0, 2, 3]].abs().sum(1) > 0)
    # Outside training (validation, user calls) the loss is the plain mean.
    torch.testing.assert_close(net.get_loss(y_pred, y_true, training=False), per_example.mean())


@pytest.mark.parametrize("smoothing", [0.0, 0.1])  # one pass; two passes of the criterion
def test_mixed_labels_loss_equals_hand_computation(digits, smoothing):
    X, y = digits
    net = _net(max_epochs=1, criterion__label_smoothing=smoothing).fit(X, y)
    y_pred = torch.randn(3, 10)
    y_true, y_partner = torch.tensor([1, 2, 3]), torch.tensor([4, 2, 0])
    weights = torch.tensor([1.0, 2.0, 1.0])
    net._batch_ = _BatchPlan(np.arange(3), np.arange(3), weights, torch.zeros(3, 64), y_partner,
                             0.3)
    def ce(target):
        return torch.nn.functional.cross_entropy(y_pred, target, reduction="none",
                                                 label_smoothing=smoothing)

    mixed = 0.3 * ce(y_true) + 0.7 * ce(y_partner)
    torch.testing.assert_close(net.get_loss(y_pred, y_true, training=True),
                               (mixed * weights).sum() / weights.sum())


def test_criterion_instance_is_not_mutated(digits):
    X, y = digits
    criterion = torch.nn.CrossEntropyLoss()
    net = _net(criterion=criterion, max_epochs=2).fit(X, y)
    assert criterion.reduction == "mean" and net.criterion_.reduction == "none"


# ---------------------------------------------------------------- mixup
def _coreset_plans(net):
    return [(x, plan) for _, x, plan in net.seen_ if plan is not None]


def test_cluster_mixup_partners_come_from_the_medoid_cluster(digits, selectors):
    X, y = digits
    y_noisy = add_label_noise(y, 0.3, random_state=0)[0]
    net = _Spy("mlp", unselected_weight=0.0,
               max_epochs=3, warmup_epochs=1, mixup="cluster", group_by="prediction",
               coreset_size=0.1,
               selection_optimizer="lazy", train_split=None, verbose=0, random_state=0,
               batch_size=32).fit(X, y_noisy)
    assert len(_coreset_plans(net)) == sum(int(np.ceil(len(s.indices_) / 32)) for s in selectors)
    # Every batch of epoch e used the coreset selected at epoch e.
    by_epoch = {2: selectors[0], 3: selectors[1]}
    for epoch, x, plan in net.seen_:
        if plan is None:
            continue
        selector = by_epoch[epoch]
        cluster_of_medoid = {int(m): j for j, m in enumerate(selector.indices_)}
        clusters = np.array([cluster_of_medoid[int(p)] for p in plan.positions])
        np.testing.assert_array_equal(selector.labels_[plan.partners], clusters)
        # Labels mixed: the partners' (noisy) labels, lambda in [0, 1], the module saw the mix.
        np.testing.assert_array_equal(plan.partner_y.numpy(), y_noisy[plan.partners])
        assert 0 <= plan.lam <= 1
        expected = plan.lam * X[plan.positions] + (1 - plan.lam) * X[plan.partners]
        np.testing.assert_allclose(x.numpy(), expected, rtol=1e-6, atol=1e-6)
    # With group_by="prediction" some partners carry another label: the labels really mix.
    assert any(np.any(plan.partner_y.numpy() != y_noisy[plan.positions])
               for _, plan in _coreset_plans(net))


def test_class_mixup_partners_share_the_noisy_label_from_all_data(digits, selectors):
    X, y = digits
    y_noisy = add_label_noise(y, 0.3, random_state=1)[0]
    net = _Spy("mlp", coreset_size=0.5, unselected_weight=0.0,
               max_epochs=4, warmup_epochs=1, mixup="class", mixup_alpha=(1.0, 0.1),
               train_split=None, verbose=0, random_state=0, batch_size=32).fit(X, y_noisy)
    outside = 0
    for epoch, x, plan in net.seen_:
        if plan is None:
            continue
        np.testing.assert_array_equal(y_noisy[plan.partners], y_noisy[plan.positions])
        assert plan.partner_y is None  # labels are not mixed
        outside += np.sum(~np.isin(plan.partners, selectors[epoch - 2].indices_))
        expected = plan.lam * X[plan.positions] + (1 - plan.lam) * X[plan.partners]
        np.testing.assert_allclose(x.numpy(), expected, rtol=1e-6, atol=1e-6)
    assert outside > 0  # partners are drawn from all training data, not only the coreset


@pytest.mark.parametrize("mixup, alpha, beta", [("class", (1.0, 0.1), (1.0, 0.1)),
                                                ("cluster", 0.5, (0.5, 0.5))])
def test_mixup_lambda_distribution(mixup, alpha, beta):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    net = _Spy("mlp", coreset_size=0.5, unselected_weight=0.0,
               module__hidden=(8,), max_epochs=25, warmup_epochs=1, mixup=mixup,
               mixup_alpha=alpha, train_split=None, verbose=0, random_state=0,
               batch_size=10).fit(X, y)
    lambdas = [plan.lam for _, plan in _coreset_plans(net)]
    assert len(lambdas) == 24 * 10
    assert stats.kstest(lambdas, stats.beta(*beta).cdf).pvalue > 1e-3


def test_no_mixup_feeds_the_raw_rows(digits):
    X, y = digits
    net = _Spy("mlp", coreset_size=0.5, unselected_weight=0.0,
               max_epochs=3, warmup_epochs=1, mixup="none", train_split=None, verbose=0,
               random_state=0).fit(X, y)
    for x, plan in _coreset_plans(net):
        assert plan.partners is None
        np.testing.assert_array_equal(x.numpy(), X[plan.positions])


# ---------------------------------------------------------------- examples outside the coreset
def _epoch_plans(net, epoch):
    plans = [plan for e, _, plan in net.seen_ if e == epoch]
    return (np.concatenate([plan.positions for plan in plans]),
            np.concatenate([plan.weights.numpy() for plan in plans]), plans)


def test_unselected_examples_train_at_a_fraction_of_their_group_medoid_weight(digits,
                                                                              selectors):
    X, y = digits
    net = _Spy("mlp", coreset_size=0.3, unselected_weight=0.25, selection_weights="cluster",
               mixup="none", max_epochs=2, warmup_epochs=1, train_split=None, verbose=0,
               random_state=0, batch_size=32).fit(X, y)
    selector = selectors[-1]
    positions, weights, _ = _epoch_plans(net, 2)
    np.testing.assert_array_equal(np.sort(positions), np.arange(len(X)))  # each example once
    weight_of = np.empty(len(X))
    weight_of[positions] = weights
    np.testing.assert_allclose(weight_of[selector.indices_], selector.weights_, rtol=1e-6)
    is_medoid = np.zeros(len(X), dtype=bool)
    is_medoid[selector.indices_] = True
    for label in np.unique(y):
        mean = selector.weights_[y[selector.indices_] == label].mean()
        np.testing.assert_allclose(weight_of[~is_medoid & (y == label)], 0.25 * mean,
                                   rtol=1e-6)
    np.testing.assert_array_equal(net.coreset_indices_, selector.indices_)  # the medoids only
    assert net.history[-1, "coreset_size"] == len(X)


def test_cluster_mixup_partners_of_unselected_examples_come_from_their_cluster(digits,
                                                                               selectors):
    X, y = digits
    net = _Spy("mlp", coreset_size=0.2, unselected_weight=0.5, mixup="cluster", max_epochs=2,
               warmup_epochs=1, train_split=None, verbose=0, random_state=0,
               batch_size=32).fit(X, y)
    clusters = selectors[-1].labels_
    _, _, plans = _epoch_plans(net, 2)
    for plan in plans:
        np.testing.assert_array_equal(clusters[plan.partners], clusters[plan.positions])
    assert sum(int(np.sum(plan.partners != plan.positions)) for plan in plans) > len(X) // 2


def test_a_coreset_of_everything_is_plain_training(digits, selectors):
    X, y = digits
    net = _net(coreset_size=1.0, unselected_weight=0.3).fit(X, y)
    assert selectors == []  # nothing to select
    assert np.isnan(net.history[:, "selection_objective"]).all()
    assert net.history[:, "coreset_size"] == [len(X)] * 4
    np.testing.assert_array_equal(net.coreset_indices_, np.arange(len(X)))


def test_default_keeps_every_example_on_clean_labels(digits):
    X, y = digits
    net = CrustClassifier(max_epochs=7, train_split=None, verbose=0, random_state=0).fit(X, y)
    assert net.crust_config_["coreset_size"] == "auto"
    assert net.noise_rate_ < 0.03  # no flipped label: the estimate should find (almost) none
    assert net.history[:, "coreset_size"] == [len(X)] * 7
    assert type(net.criterion_) is torch.nn.CrossEntropyLoss  # plain training, cross entropy


# ---------------------------------------------------------------- presets and validation
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_resolve_at_fit_without_touching_params(digits, preset):
    X, y = digits
    net = _net(preset=preset, max_epochs=2, warmup_epochs=None, coreset_size=None,
               unselected_weight=None)
    before = net.get_params(deep=False)
    net.fit(X, y)
    expected = dict(PRESETS[preset])
    expected["mixup_alpha"] = tuple(expected["mixup_alpha"])
    assert net.crust_config_ == expected
    assert net.get_params(deep=False).keys() == before.keys()
    assert all(net.get_params(deep=False)[k] is before[k] for k in
               ("coreset_size", "warmup_epochs", "mixup", "preset"))


def test_user_values_override_the_preset(digits):
    X, y = digits
    net = _net(preset="official", mixup="none", coreset_size=0.3, mixup_alpha=2.0,
               max_epochs=2).fit(X, y)
    config = net.crust_config_
    assert (config["mixup"], config["coreset_size"], config["mixup_alpha"]) == \
        ("none", 0.3, (2.0, 2.0))
    assert (config["gradient"], config["selection_weights"]) == ("penultimate", "radius")


def test_default_preset_is_the_measured_one():
    assert PRESETS["default"] == dict(
        coreset_size="auto", unselected_weight=0.3, noisy_criterion="sce",
        noisy_criterion_scope="auto", warmup_epochs=5, select_every=1, gradient="logits",
        group_by="label", selection_optimizer="centrality", selection_weights="uniform",
        mixup="cluster", mixup_alpha=(1.0, 1.0))
    assert PRESETS["paper"]["unselected_weight"] == PRESETS["official"]["unselected_weight"] == 0
    assert PRESETS["paper"]["noisy_criterion"] == PRESETS["official"]["noisy_criterion"] == "keep"
    assert PRESETS["paper"]["group_by"] == "prediction"
    assert PRESETS["paper"]["selection_optimizer"] == "lazy"
    assert PRESETS["official"]["mixup_alpha"] == (1.0, 0.1)


@pytest.mark.parametrize("kwargs, message", [
    (dict(preset="fast"), r"preset='fast' is not valid: pass one of \['default', 'official'"),
    (dict(coreset_size=1.5), r"coreset_size=1.5 is not valid: pass a float in \(0, 1\]"),
    (dict(coreset_size=0), "coreset_size=0 is not valid"),
    (dict(coreset_size=True), "coreset_size=True is not valid"),
    (dict(coreset_size=1000), "coreset_size=1000 is larger than the 300 training examples"),
    (dict(unselected_weight=1.5), r"unselected_weight=1.5 is not valid: pass a float in \[0, 1\]"),
    (dict(unselected_weight=-0.1), "unselected_weight=-0.1 is not valid"),
    (dict(unselected_weight="0.3"), "unselected_weight='0.3' is not valid"),
    (dict(warmup_epochs=-1), "warmup_epochs=-1 is not valid: pass an int >= 0"),
    (dict(warmup_epochs=1.5), "warmup_epochs=1.5 is not valid"),
    (dict(select_every=0), "select_every=0 is not valid: pass an int >= 1"),
    (dict(gradient="hessian"), r"gradient='hessian' is not valid: pass one of \['logits'"),
    (dict(group_by="cluster"), r"group_by='cluster' is not valid: pass one of \['label'"),
    (dict(selection_optimizer="greedy"), "selection_optimizer='greedy' is not valid"),
    (dict(selection_weights="size"), "selection_weights='size' is not valid"),
    (dict(mixup="batch"), r"mixup='batch' is not valid: pass one of \['cluster', 'class'"),
    (dict(mixup_alpha=0), r"mixup_alpha=0 is not valid: pass a float > 0"),
    (dict(mixup_alpha=(1.0,)), r"mixup_alpha=\(1.0,\) is not valid"),
    (dict(random_state="seed"), "random_state='seed' is not valid: pass None or an int >= 0"),
    (dict(iterator_train__sampler=None), "iterator_train__sampler cannot be used"),
])
def test_invalid_parameters_raise_at_fit(digits, kwargs, message):
    X, y = digits
    net = _net(**kwargs)  # __init__ only stores
    with pytest.raises(ValueError, match=message):
        net.fit(X, y)


def test_invalid_module_name(digits):
    X, y = digits
    with pytest.raises(ValueError, match=r"module='resnet' is not valid: .*\['cnn', 'mlp'"):
        CrustClassifier("resnet", verbose=0).fit(*digits)


def test_unknown_labels_with_fixed_classes(digits):
    X, y = digits
    with pytest.raises(ValueError, match=r"y contains labels \[9\] that are not in classes_"):
        _net(classes=list(range(9))).fit(X, y)


def test_iterator_ignoring_the_sampler_is_detected(digits):
    X, y = digits

    def shuffling_loader(dataset, sampler=None, **kwargs):
        return DataLoader(dataset, shuffle=True, **kwargs)

    net = _net(warmup_epochs=0, iterator_train=shuffling_loader)
    with pytest.raises(RuntimeError, match="did not return the examples in the order"):
        net.fit(X, y)


# ---------------------------------------------------------------- data handling
def test_inputs_are_not_mutated_and_predictions_are_probabilities(digits):
    X, y = digits
    X64, y_list = X.astype(np.float64), list(y)
    X_copy = X64.copy()
    net = _net().fit(X64, y_list)
    np.testing.assert_array_equal(X64, X_copy)
    assert y_list == list(y)
    proba = net.predict_proba(X64)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    logits = net.forward(X).numpy()  # predict_proba applies softmax to the logits
    np.testing.assert_allclose(proba, torch.softmax(torch.from_numpy(logits), 1).numpy(),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(net.predict(X64), proba.argmax(1))
    assert net.n_features_in_ == 64 and list(net.classes_) == list(range(10))


def test_pandas_input_and_string_labels(digits):
    pd = pytest.importorskip("pandas")
    X, y = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                      "nine"])
    df = pd.DataFrame(X, columns=[f"pixel{i}" for i in range(64)])
    labels = pd.Series(names[y])
    net = _net(max_epochs=6, train_split=ValidSplit(4, stratified=True)).fit(df, labels)
    assert list(net.feature_names_in_) == list(df.columns)
    assert set(net.classes_) == set(names)
    predicted = net.predict(df)
    # Labels come back as given (object strings from pandas, as scikit-learn's classifiers do).
    assert predicted.dtype.kind in "UO" and set(predicted) <= set(names)
    assert net.score(df, labels) > 0.5
    # The validation accuracy skorch records compares like with like (encoded labels).
    assert 0.3 < net.history[-1, "valid_acc"] <= 1


def test_selection_uses_the_training_split_only(digits, selectors):
    X, y = digits
    net = _net(train_split=ValidSplit(4, stratified=True), max_epochs=3)
    net.fit(X, y)
    codes = np.searchsorted(net.classes_, y)
    train, valid = net.get_split_datasets(X, codes)
    assert set(net.coreset_indices_) <= set(train.indices)
    assert not set(net.coreset_indices_) & set(valid.indices)
    # Selected positions (in the split) map to those rows of X.
    np.testing.assert_array_equal(np.asarray(train.indices)[selectors[-1].indices_],
                                  net.coreset_indices_)
    assert net.history[-1, "coreset_size"] < len(train.indices)


@pytest.mark.parametrize("shape", [(300, 64), (300, 1, 8, 8)])
def test_small_cnn_by_name(digits, shape):
    X, y = digits
    net = CrustClassifier("cnn", max_epochs=2, warmup_epochs=1, train_split=None, verbose=0,
                          random_state=0, gradient="penultimate").fit(X.reshape(shape), y)
    assert isinstance(net.module_, SmallCNN)
    assert net.predict_proba(X.reshape(shape)).shape == (300, 10)


def test_module_class_and_explicit_module_params(digits):
    X, y = digits
    net = _net(module=MLP, module__hidden=(32, 16), module__dropout=0.1).fit(X, y)
    assert [m.out_features for m in net.module_.modules()
            if isinstance(m, torch.nn.Linear)] == [32, 16, 10]


def test_dataset_input(digits):
    X, y = digits
    net = CrustClassifier(MLP, module__n_features=64, module__n_classes=10, max_epochs=3,
                          warmup_epochs=1, train_split=None, verbose=0, random_state=0)
    net.fit(Dataset(X, y.astype(np.int64)), None)
    assert len(net.coreset_indices_) < len(X)
    with pytest.raises(ValueError, match="MLP needs n_features"):
        CrustClassifier(max_epochs=1, verbose=0).fit(Dataset(X, y.astype(np.int64)), None)


def test_penultimate_features_match_autograd(digits):
    X, y = digits
    net = _net(gradient="penultimate", max_epochs=2).fit(X, y)
    G, y_out, _ = net.gradient_features(X[:50], y[:50])
    module = net.module_.eval()
    inputs = []

    def keep(_module, args):
        args[0].retain_grad()
        inputs.append(args[0])

    handle = module.output.register_forward_pre_hook(keep)
    logits = module(torch.from_numpy(X[:50]))
    handle.remove()
    torch.nn.functional.cross_entropy(logits, torch.from_numpy(y[:50]), reduction="sum").backward()
    np.testing.assert_allclose(G, inputs[0].grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(y_out, y[:50])
    with pytest.raises(ValueError, match="needs the labels y"):
        net.gradient_features(X)


# ---------------------------------------------------------------- scikit-learn integration
def test_same_random_state_same_model(digits):
    X, y = digits
    params = dict(max_epochs=4, warmup_epochs=1, module__dropout=0.2, random_state=3)
    first = _net(**params).fit(X, y)
    second = _net(**params).fit(X, y)
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    np.testing.assert_array_equal(first.coreset_indices_, second.coreset_indices_)
    third = _net(**{**params, "random_state": 4}).fit(X, y)
    assert not np.array_equal(first.predict_proba(X), third.predict_proba(X))


def test_clone_and_params(digits):
    net = _net(coreset_size=0.3, preset="paper", module__hidden=(8,))
    params = net.get_params()
    for name in ("coreset_size", "warmup_epochs", "select_every", "gradient", "group_by",
                 "selection_optimizer", "selection_weights", "mixup", "mixup_alpha", "preset",
                 "random_state", "module__hidden"):
        assert name in params
    twin = clone(net)
    assert twin.get_params()["coreset_size"] == 0.3 and not twin.initialized_
    twin.set_params(coreset_size=0.7)
    assert twin.coreset_size == 0.7 and net.coreset_size == 0.3


def test_pickle_round_trip(digits):
    X, y = digits
    net = _net().fit(X, y)
    restored = pickle.loads(pickle.dumps(net))
    np.testing.assert_array_equal(restored.predict_proba(X), net.predict_proba(X))
    np.testing.assert_array_equal(restored.coreset_indices_, net.coreset_indices_)
    restored.partial_fit(X, y)  # can keep training
    assert len(restored.history) == 2 * len(net.history)


def test_pipeline_grid_search_and_cross_val_score(digits):
    X, y = digits
    pipe = make_pipeline(StandardScaler(), _net(max_epochs=3))
    search = GridSearchCV(pipe, {"crustclassifier__coreset_size": [0.3, 0.7]}, cv=2).fit(X, y)
    assert search.best_params_["crustclassifier__coreset_size"] in (0.3, 0.7)
    assert search.predict(X).shape == (300,)
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and np.all(scores > 0.2)


# ---------------------------------------------------------------- skorch integration
def test_skorch_callbacks_and_iterator_params(digits, tmp_path, capsys):
    X, y = digits
    net = _net(max_epochs=20, warmup_epochs=1, train_split=ValidSplit(4, stratified=True),
               iterator_train__batch_size=16, device="cpu", verbose=1,
               callbacks=[ProgressBar(), EarlyStopping(patience=1, threshold=10.0),
                          Checkpoint(dirname=str(tmp_path))])
    net.fit(X, y)
    assert len(net.history) < 20  # early stopping stopped it
    assert (tmp_path / "params.pt").exists()
    out = capsys.readouterr()
    assert "coreset_size" in out.out  # PrintLog shows the selection columns
    assert net.history[0, "train_batch_count"] == int(np.ceil(225 / 16))


def test_coreset_clean_fraction(digits):
    X, y = digits
    y_noisy = add_label_noise(y, 0.4, random_state=0)[0]
    net = _net(max_epochs=3, callbacks=[CoresetCleanFraction(y)]).fit(X, y_noisy)
    clean = net.history[:, "coreset_clean_fraction"]
    weighted = net.history[:, "coreset_weighted_clean_fraction"]
    assert clean[0] == pytest.approx(np.mean(y_noisy == y))  # warm-up: all data
    assert all(0 <= value <= 1 for value in clean + weighted)
    rows = net.coreset_indices_
    assert clean[-1] == pytest.approx(np.mean(y_noisy[rows] == y[rows]))
    perfect = _net(max_epochs=2, callbacks=[CoresetCleanFraction(y)]).fit(X, y)
    assert perfect.history[:, "coreset_clean_fraction"] == [1.0, 1.0]
    with pytest.raises(ValueError, match="got 10 true labels for 300 training labels"):
        _net(callbacks=[CoresetCleanFraction(y[:10])]).fit(X, y)



def test_coreset_clean_fraction_counts_medoids_when_unselected_examples_train(digits):
    X, y = digits
    y_noisy = add_label_noise(y, 0.4, random_state=0)[0]
    net = _net(max_epochs=3, unselected_weight=0.25,
               callbacks=[CoresetCleanFraction(y)]).fit(X, y_noisy)
    rows = net.coreset_indices_
    assert len(rows) < len(X)  # the epoch trains on every row, the coreset is half of them
    assert net.history[-1, "coreset_clean_fraction"] == pytest.approx(
        np.mean(y_noisy[rows] == y[rows]))
    y_noisy = np.asarray(y_noisy)
    weights = np.zeros(len(X))
    weights[rows] = net.coreset_weights_
    for label in np.unique(y_noisy):  # the rest: 0.25 of their class's mean medoid weight
        in_class = y_noisy == label
        rest = in_class & (weights == 0)
        weights[rest] = 0.25 * weights[in_class & (weights > 0)].mean()
    assert net.history[-1, "coreset_weighted_clean_fraction"] == pytest.approx(
        np.sum(weights * (y_noisy == y)) / weights.sum())

def _kernel(net) -> tuple:
    group = net.optimizer_.param_groups[0]
    return group.get("fused"), group.get("foreach")


def test_adam_gets_the_fused_kernel_unless_the_user_chose_one(digits):
    X, y = digits
    supported = "cpu" in torch.utils._foreach_utils._get_fused_kernels_supported_devices()
    assert _kernel(_net(max_epochs=1).fit(X, y)) == (supported, None)
    assert _kernel(_net(max_epochs=1, optimizer=torch.optim.AdamW).fit(X, y))[0] is supported
    assert _kernel(_net(max_epochs=1, optimizer__fused=False).fit(X, y)) == (False, None)
    assert _kernel(_net(max_epochs=1, optimizer__foreach=True).fit(X, y)) == (None, True)
    sgd = _net(max_epochs=1, optimizer=torch.optim.SGD).fit(X, y)
    assert not sgd.optimizer_.param_groups[0].get("fused")

    class MyAdam(torch.optim.Adam):  # may override step: left alone
        pass

    assert not _kernel(_net(max_epochs=1, optimizer=MyAdam).fit(X, y))[0]
    # A parameter group that chooses its own kernel is honoured too.
    groups = _net(max_epochs=1, optimizer__param_groups=[("*", {"foreach": False})]).fit(X, y)
    assert _kernel(groups) == (None, False)


def test_fused_adam_trains_the_same_rule(digits):
    # Fused or not, Adam's update is the same: parameters agree after several epochs up to
    # float rounding (a different rule would differ by orders of magnitude more).
    X, y = digits
    fused = _net(max_epochs=4).fit(X, y)
    plain = _net(max_epochs=4, optimizer__fused=False).fit(X, y)
    assert fused.optimizer_.param_groups[0]["fused"]
    for a, b in zip(fused.module_.parameters(), plain.module_.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


# ---------------------------------------------------------------- does it work?
def _noisy_digits(seed):
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                        random_state=seed)
    scaler = StandardScaler().fit(X_train)
    y_noisy = add_label_noise(y_train, 0.5, random_state=seed)[0]
    return (scaler.transform(X_train).astype(np.float32), y_noisy,
            scaler.transform(X_test).astype(np.float32), y_test)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_beats_plain_training_at_50_percent_noise(seed):
    # Measured (10 seeds, this protocol): plain 0.70-0.78, default 0.92-0.96, smallest per-seed
    # margin 0.15; see the PRESETS comment in _classifier.py.
    X_train, y_noisy, X_test, y_test = _noisy_digits(seed)
    shared = dict(optimizer=torch.optim.Adam, lr=1e-3, max_epochs=60, train_split=None,
                  verbose=0)
    torch.manual_seed(seed)
    plain = NeuralNetClassifier(MLP, module__n_features=64, module__n_classes=10,
                                criterion=torch.nn.CrossEntropyLoss,
                                iterator_train__shuffle=True, **shared)
    plain.fit(X_train, y_noisy.astype(np.int64))
    crust = CrustClassifier("mlp", random_state=seed, **shared).fit(X_train, y_noisy)
    plain_accuracy = np.mean(plain.predict(X_test) == y_test)
    crust_accuracy = np.mean(crust.predict(X_test) == y_test)
    assert crust_accuracy > 0.88
    assert crust_accuracy - plain_accuracy > 0.08


# ---------------------------------------------------------------- selection device
def test_selection_stays_on_the_cpu_engine_for_a_cpu_net(digits, selectors):
    X, y = digits
    _net(max_epochs=3).fit(X, y)
    assert selectors and all(s.device is None for s in selectors)
    assert all(m.startswith("dense-") for s in selectors for m in s.class_methods_)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_selection_runs_on_the_gpu_for_a_cuda_net(digits, selectors):
    X, y = digits
    _net(max_epochs=3, device="cuda").fit(X, y)
    assert selectors and all(s.device == "cuda" for s in selectors)
    assert all(m.startswith("cuda-") for s in selectors for m in s.class_methods_)


# ---------------------------------------------------------------- the fast data path
def _forced_dataloader(**kwargs):
    """Parameters that send both iterators down skorch's DataLoader path with the same batches."""
    from torch.utils.data import default_collate

    return dict(iterator_train__collate_fn=default_collate,
                iterator_valid__collate_fn=default_collate, **kwargs)


@pytest.mark.parametrize("mixup", ["cluster", "class", "none"])
def test_index_batches_feed_what_skorch_dataloader_feeds(digits, mixup):
    X, y = digits
    y_noisy = add_label_noise(y, 0.3, random_state=1)[0]
    # iterator_valid__batch_size: the feature pass then batches as the DataLoader does.
    params = dict(max_epochs=4, warmup_epochs=1, mixup=mixup, verbose=0, random_state=3,
                  batch_size=48, iterator_valid__batch_size=48,
                  train_split=ValidSplit(4, stratified=True))
    fast = _Spy("mlp", **params).fit(X, y_noisy)
    slow = _Spy("mlp", **_forced_dataloader(**params)).fit(X, y_noisy)
    from sk_crust._batches import IndexBatches

    assert isinstance(fast.get_iterator(fast.get_dataset(X, y), training=True), IndexBatches)
    assert not isinstance(slow.get_iterator(slow.get_dataset(X, y), training=True),
                          IndexBatches)
    assert len(fast.seen_) == len(slow.seen_) > 0
    for (e1, x1, p1), (e2, x2, p2) in zip(fast.seen_, slow.seen_, strict=True):
        assert e1 == e2
        torch.testing.assert_close(x1, x2, rtol=0, atol=0)  # same examples, same mix
        assert (p1 is None) == (p2 is None)
        if p1 is not None:
            np.testing.assert_array_equal(p1.positions, p2.positions)
            torch.testing.assert_close(p1.weights, p2.weights, rtol=0, atol=0)
            assert p1.lam == p2.lam
            if p1.partners is None:
                assert p2.partners is None
            else:
                np.testing.assert_array_equal(p1.partners, p2.partners)
    for a, b in zip(fast.module_.parameters(), slow.module_.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    np.testing.assert_array_equal(fast.history[:, "valid_loss"], slow.history[:, "valid_loss"])
    np.testing.assert_array_equal(fast.predict_proba(X), slow.predict_proba(X))


def test_iterator_params_outside_the_fast_path_reach_the_dataloader(digits):
    X, y = digits
    seen = []

    class Loader(DataLoader):
        def __init__(self, *args, **kwargs):
            seen.append(kwargs.get("drop_last"))
            super().__init__(*args, **kwargs)

    net = _net(iterator_train=Loader, iterator_train__drop_last=True, batch_size=64,
               max_epochs=2, warmup_epochs=1).fit(X, y)
    assert seen and all(seen)  # a custom iterator class is used, with its parameters
    # drop_last drops the incomplete last batch: 300 // 64 full batches in warm-up.
    assert len(net.history[0, "batches"]) == 300 // 64


# ---------------------------------------------------------------- probabilities, RNG
def test_predict_proba_is_a_softmax_for_any_criterion(digits):
    X, y = digits
    net = _net(criterion=torch.nn.MultiMarginLoss, max_epochs=2).fit(X, y)
    proba = net.predict_proba(X[:20])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert (proba >= 0).all()
    logits = net.forward(X[:20]).numpy()
    np.testing.assert_array_equal(proba.argmax(axis=1), logits.argmax(axis=1))
    # An explicit predict_nonlinearity is the user's choice and stays as it is.
    raw = _net(criterion=torch.nn.MultiMarginLoss, max_epochs=1,
               predict_nonlinearity=None).fit(X, y).predict_proba(X[:5])
    assert not np.allclose(raw.sum(axis=1), 1.0)


def test_random_state_leaves_the_global_torch_rng_alone(digits):
    X, y = digits
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    _net(max_epochs=2, module__dropout=0.2).fit(X, y)
    torch.testing.assert_close(torch.rand(3), expected)


def test_partial_fit_is_reproducible_whatever_the_global_rng(digits):
    X, y = digits
    nets = []
    for global_seed in (1, 2):
        net = _net(max_epochs=1, warmup_epochs=1, module__dropout=0.2)
        torch.manual_seed(global_seed)
        net.partial_fit(X, y)
        torch.rand(global_seed)  # the caller uses torch's generator in between
        net.partial_fit(X, y)
        nets.append(net)
    for a, b in zip(nets[0].module_.parameters(), nets[1].module_.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_select_every_holds_across_partial_fit_on_the_same_data(digits, selectors):
    X, y = digits
    net = _net(max_epochs=2, warmup_epochs=1, select_every=3)
    net.partial_fit(X, y)  # epochs 1 (warm-up), 2 (selects)
    net.partial_fit(X, y)  # epochs 3, 4: keep the coreset of epoch 2
    ran = [row["epoch"] for row in net.history if not np.isnan(row["selection_objective"])]
    assert ran == [2] and len(selectors) == 1
    assert net.history[:, "coreset_size"][1:] == [len(selectors[0].indices_)] * 3
    # On other data the kept coreset does not apply: the next epoch selects.
    net.partial_fit(X[:200], y[:200])  # epochs 5 (selects: epoch 5 is due anyway), 6
    net.partial_fit(X[:150], y[:150])  # epoch 7 is not due but the data changed; 8 is due
    ran = [row["epoch"] for row in net.history if not np.isnan(row["selection_objective"])]
    assert ran == [2, 5, 7, 8]


def test_feature_pass_batches_small_rows_by_a_thousand(digits):
    from sk_crust._batches import SliceBatches

    X, y = digits
    net = _net(max_epochs=1, batch_size=32).fit(X, y)
    dataset = net.get_dataset(X, y)
    iterator = net._feature_iterator(dataset)
    assert isinstance(iterator, SliceBatches) and iterator.batch_size == 1024
    G = net.gradient_features(X, y).features
    # The user's batch size is kept; the features agree up to float rounding.
    same = _net(max_epochs=1, batch_size=32, iterator_valid__batch_size=32).fit(X, y)
    assert same._feature_iterator(dataset).batch_size == 32
    np.testing.assert_allclose(same.gradient_features(X, y).features, G, rtol=1e-5, atol=1e-6)


def test_validation_batches_small_rows_by_a_thousand_with_the_same_loss(digits):
    from skorch.dataset import ValidSplit

    from sk_crust._batches import SliceBatches

    X, y = digits
    split = dict(train_split=ValidSplit(5, stratified=True), batch_size=32, max_epochs=2)
    net = _net(**split).fit(X, y)
    # 60 validation rows: one batch, not two of 32 (skorch records one size per batch).
    assert [row["valid_batch_size"] for row in net.history[-1]["batches"]
            if "valid_batch_size" in row] == [60]
    iterator = net.get_iterator(net.get_dataset(X, y), training=False)
    assert isinstance(iterator, SliceBatches) and iterator.batch_size == 1024
    same = _net(**split, iterator_valid__batch_size=32).fit(X, y)
    assert [row["valid_batch_size"] for row in same.history[-1]["batches"]
            if "valid_batch_size" in row] == [32, 28]
    # Training saw the same batches; only the validation mean is summed in another order.
    np.testing.assert_allclose(net.history[:, "valid_loss"], same.history[:, "valid_loss"],
                               rtol=1e-5)
    np.testing.assert_array_equal(net.history[:, "train_loss"], same.history[:, "train_loss"])
    # drop_last keeps the user's batch size, so the same rows are left out.
    dropped = _net(**split, iterator_valid__drop_last=True)
    assert dropped.get_iterator(dropped.get_dataset(X, y), training=False).batch_size == 32


def test_a_module_working_in_place_does_not_change_the_callers_X(digits):
    class InPlace(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(64, 10)

        def forward(self, X):
            return self.linear(X.mul_(2.0))  # in place on its input

    X, y = digits
    X = X.copy()
    before = X.copy()
    net = _net(InPlace, max_epochs=2).fit(X, y)
    net.predict_proba(X)
    np.testing.assert_array_equal(X, before)
