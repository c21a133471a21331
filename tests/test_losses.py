"""Robust losses: values against hand computations, limits, gradients, use as a criterion."""

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

import sk_crust
from sk_crust import CrustClassifier, losses
from sk_crust.losses import GCELoss, SCELoss, _mixed_losses

LOGITS = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, -1.0, 3.0]])
TARGET = torch.tensor([0, 2, 1])


def _softmax_of_target():
    """p_y by hand, from the exponentials."""
    out = []
    for row, y in zip(LOGITS.tolist(), TARGET.tolist(), strict=True):
        e = [math.exp(v) for v in row]
        out.append(e[y] / sum(e))
    return out


@pytest.mark.parametrize("criterion", [GCELoss(q=0.5, reduction="none"),
                                       SCELoss(alpha=0.3, beta=2.0, A=-6, reduction="none"),
                                       torch.nn.CrossEntropyLoss(reduction="none")])
def test_mixed_losses_in_one_pass_equal_two_passes(criterion):
    logits = LOGITS.clone().requires_grad_(True)
    partner = torch.tensor([1, 2, 0])
    two = 0.3 * criterion(logits, TARGET) + 0.7 * criterion(logits, partner)
    one = _mixed_losses(criterion, logits, TARGET, partner, 0.3)
    torch.testing.assert_close(one, two)
    upstream = torch.tensor([0.5, 2.0, 1.0])  # as the weighted mean passes back
    (grad_two,) = torch.autograd.grad((two * upstream).sum(), logits)
    (grad_one,) = torch.autograd.grad((_mixed_losses(criterion, logits, TARGET, partner,
                                                     0.3) * upstream).sum(), logits)
    torch.testing.assert_close(grad_one, grad_two)
    # The closed-form gradient against finite differences, in double precision.
    doubled = LOGITS.double().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda z: _mixed_losses(criterion, z, TARGET, partner, 0.3), (doubled,))


@pytest.fixture(params=["compiled", "torch"])
def mean_path(request, monkeypatch):
    """Run a test through the compiled weighted mean (numba) and through the torch path."""
    if request.param == "compiled":
        if losses._compiled_mean is None:
            pytest.skip("numba is not installed")
    else:
        monkeypatch.setattr(losses, "_compiled_mean", None)
    return request.param


@pytest.mark.parametrize("criterion", [SCELoss(reduction="none"),
                                       GCELoss(q=0.4, reduction="none"),
                                       torch.nn.CrossEntropyLoss(reduction="none")])
def test_mixed_losses_weighted_mean_in_the_same_pass(criterion, mean_path):
    # The coreset batch's weighted mean, folded into the closed-form pass, equals the weighted
    # mean of the per-example losses, value and gradient (and finite differences).
    partner = torch.tensor([1, 2, 0])
    weight = torch.tensor([0.5, 2.0, 0.0])
    logits = LOGITS.clone().requires_grad_(True)
    per_example = _mixed_losses(criterion, logits, TARGET, partner, 0.3)
    expected = (per_example * weight).sum() / weight.sum()
    got = _mixed_losses(criterion, logits, TARGET, partner, 0.3, sample_weight=weight)
    assert got.dim() == 0
    torch.testing.assert_close(got, expected)
    (grad_expected,) = torch.autograd.grad(expected, logits, retain_graph=True)
    (grad_got,) = torch.autograd.grad(got, logits)
    torch.testing.assert_close(grad_got, grad_expected)
    assert torch.autograd.gradcheck(
        lambda z: _mixed_losses(criterion, z, TARGET, partner, 0.3,
                                sample_weight=weight.double()), (LOGITS.double().requires_grad_(),))
    # All weights zero: a zero loss, not a division by zero.
    zero = _mixed_losses(criterion, LOGITS, TARGET, partner, 0.3, sample_weight=torch.zeros(3))
    assert float(zero) == 0.0


@pytest.mark.skipif(losses._compiled_mean is None, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("criterion", [SCELoss(alpha=0.3, beta=2.0, A=-6, reduction="none"),
                                       GCELoss(q=0.7, reduction="none"),
                                       torch.nn.CrossEntropyLoss(reduction="none")])
def test_compiled_weighted_mean_equals_the_torch_path(criterion, dtype, monkeypatch):
    # A training batch's shape, with confident wrong logits (log p near -30) among them.
    rng = torch.Generator().manual_seed(0)
    logits = torch.randn(128, 10, generator=rng, dtype=dtype) * 6
    target = torch.randint(0, 10, (128,), generator=rng)
    partner = torch.randint(0, 10, (128,), generator=rng)
    weight = torch.rand(128, generator=rng)
    weight[:40] = 0.0

    def value_and_grad():
        z = logits.clone().requires_grad_(True)
        loss = _mixed_losses(criterion, z, target, partner, 0.37, sample_weight=weight)
        (loss * 3.0).backward()  # a non-unit upstream gradient is passed on
        return loss.detach(), z.grad

    compiled = value_and_grad()
    assert type(compiled[0]) is torch.Tensor and compiled[0].dtype == dtype
    monkeypatch.setattr(losses, "_compiled_mean", None)
    expected = value_and_grad()
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else {}
    torch.testing.assert_close(compiled[0], expected[0], **tol)
    torch.testing.assert_close(compiled[1], expected[1], **tol)


def test_compiled_mean_leaves_bad_targets_to_torchs_error():
    # A target outside the logits' columns is never read by the kernel: torch's path raises.
    with pytest.raises((IndexError, RuntimeError), match="out of bounds|index"):
        _mixed_losses(SCELoss(reduction="none"), LOGITS, torch.tensor([0, 3, 1]), TARGET, 0.5,
                      sample_weight=torch.ones(3))


@pytest.mark.parametrize("criterion", [
    torch.nn.CrossEntropyLoss(weight=torch.ones(3), reduction="none"),  # not f(log p_y) alone
    torch.nn.CrossEntropyLoss(label_smoothing=0.1, reduction="none"),
    torch.nn.NLLLoss(reduction="none"),
])
def test_mixed_losses_leave_other_criteria_to_two_passes(criterion):
    assert _mixed_losses(criterion, LOGITS, TARGET, TARGET, 0.5) is None


def test_gce_matches_hand_computation():
    q = 0.7
    expected = [(1 - p ** q) / q for p in _softmax_of_target()]
    got = GCELoss(q=q, reduction="none")(LOGITS, TARGET)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)


def test_sce_matches_hand_computation():
    alpha, beta, A = 0.1, 1.0, -4.0
    expected = []
    for row_p, p_y in zip(F.softmax(LOGITS, 1).tolist(), _softmax_of_target(), strict=True):
        ce = -math.log(p_y)
        # -sum_k p_k log(onehot_k), log 0 := A, log 1 = 0: the other classes' mass times -A.
        rce = -A * (sum(row_p) - p_y)
        expected.append(alpha * ce + beta * rce)
    got = SCELoss(alpha=alpha, beta=beta, A=A, reduction="none")(LOGITS, TARGET)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("reduction, combine", [("mean", np.mean), ("sum", np.sum)])
@pytest.mark.parametrize("loss", [GCELoss, SCELoss])
def test_reductions(loss, reduction, combine):
    per_example = loss(reduction="none")(LOGITS, TARGET)
    assert per_example.shape == (3,)
    reduced = loss(reduction=reduction)(LOGITS, TARGET)
    assert reduced.dim() == 0
    np.testing.assert_allclose(float(reduced), combine(per_example.numpy()), rtol=1e-6)


@pytest.mark.parametrize("loss", [GCELoss, SCELoss])
def test_reduction_is_read_at_call_time(loss):
    criterion = loss()
    criterion.reduction = "none"  # what CrustClassifier.initialize_criterion does
    assert criterion(LOGITS, TARGET).shape == (3,)
    criterion.reduction = "avg"
    with pytest.raises(ValueError, match=r"reduction='avg' is not valid"):
        criterion(LOGITS, TARGET)


def test_gce_tends_to_cross_entropy_as_q_tends_to_zero():
    ce = F.cross_entropy(LOGITS, TARGET, reduction="none")
    gaps = [float((GCELoss(q=q, reduction="none")(LOGITS, TARGET) - ce).abs().max())
            for q in (0.1, 0.01, 1e-4)]
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 1e-3


def test_gce_at_q_one_is_one_minus_p():
    got = GCELoss(q=1.0, reduction="none")(LOGITS, TARGET)
    np.testing.assert_allclose(got.numpy(), [1 - p for p in _softmax_of_target()], rtol=1e-6)


def test_sce_alpha_only_is_cross_entropy():
    np.testing.assert_allclose(float(SCELoss(alpha=1.0, beta=0.0)(LOGITS, TARGET)),
                               float(F.cross_entropy(LOGITS, TARGET)), rtol=1e-6)


@pytest.mark.parametrize("loss", [GCELoss(), GCELoss(q=1e-4), SCELoss()])
def test_gradients_finite_even_for_extreme_logits(loss):
    logits = torch.tensor([[80.0, -80.0, 0.0], [-80.0, 80.0, 0.0]], requires_grad=True)
    value = loss(logits, torch.tensor([1, 1]))  # the first example is hopelessly wrong
    value.backward()
    assert torch.isfinite(value)
    assert torch.isfinite(logits.grad).all()


def test_gce_down_weights_unlikely_examples():
    # GCE's gradient is CE's times p_y^q: a confidently wrong example pulls much less.
    logits = torch.tensor([[4.0, 0.0], [-4.0, 0.0]], requires_grad=True)
    GCELoss(reduction="sum")(logits, torch.tensor([0, 0])).backward()
    gce = logits.grad.norm(dim=1)
    logits.grad = None
    F.cross_entropy(logits, torch.tensor([0, 0]), reduction="sum").backward()
    ce = logits.grad.norm(dim=1)
    assert gce[1] / ce[1] < 0.1 < gce[0] / ce[0]


@pytest.mark.parametrize("kwargs, message", [
    (dict(q=0), r"q=0.0 is not valid: pass a float in \(0, 1\]"),
    (dict(q=1.5), r"q=1.5 is not valid"),
    (dict(q="0.7"), r"q='0.7' is not valid"),
    (dict(q=True), r"q=True is not valid"),
    (dict(reduction="avg"), r"reduction='avg' is not valid"),
])
def test_gce_invalid(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GCELoss(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    (dict(alpha=-0.1), r"alpha=-0.1 is not valid: pass a finite float >= 0"),
    (dict(beta=float("inf")), r"beta=inf is not valid"),
    (dict(alpha=0, beta=0), r"alpha=0 and beta=0 are not valid together"),
    (dict(A=0), r"A=0.0 is not valid: pass a finite float < 0"),
    (dict(A=None), r"A=None is not valid"),
    (dict(reduction=None), r"reduction=None is not valid"),
])
def test_sce_invalid(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SCELoss(**kwargs)


@pytest.mark.parametrize("logits, target, message", [
    (torch.zeros(3), torch.tensor([0, 1, 2]), r"logits of shape \(3,\) are not valid"),
    (torch.zeros(3, 2), torch.tensor([0, 1]), r"target of shape \(2,\)"),
    (torch.zeros(3, 2), torch.zeros(3), r"dtype torch.float32 is not valid"),
])
@pytest.mark.parametrize("loss", [GCELoss, SCELoss])
def test_invalid_inputs(loss, logits, target, message):
    with pytest.raises(ValueError, match=message):
        loss()(logits, target)


def test_public_lazy_export():
    assert sk_crust.GCELoss is GCELoss
    assert sk_crust.SCELoss is SCELoss
    assert {"GCELoss", "SCELoss"} <= set(sk_crust.__all__)


@pytest.mark.parametrize("criterion, params", [
    (GCELoss, {}), (SCELoss, {"criterion__alpha": 0.5}), (GCELoss(q=0.5), {})])
def test_as_crust_classifier_criterion(criterion, params):
    rng = np.random.RandomState(0)
    X = rng.randn(60, 4).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    net = CrustClassifier("mlp", criterion=criterion, max_epochs=2, warmup_epochs=1,
                          coreset_size=0.5, batch_size=16, train_split=None, verbose=0,
                          random_state=0, **params)
    net.fit(X, y)
    assert net.criterion_.reduction == "none"
    if not isinstance(criterion, type):  # the user's instance is left as it was
        assert criterion.reduction == "mean"
    assert len(net.history) == 2
    assert np.isfinite(net.history[:, "train_loss"]).all()
    proba = net.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
