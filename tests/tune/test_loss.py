"""The B-Tuning loss (tpred.tune.loss) against a direct computation on a hand-made case."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tpred.tune import Student, b_tuning_loss, split_head, teacher_predictive, teacher_weights


class Tiny(nn.Module):
    """features = x Aᵀ + a (linear, so the gradient has a short closed form); logits = head."""

    def __init__(self, a: np.ndarray, a_bias: np.ndarray, num_classes: int = 5) -> None:
        super().__init__()
        self.body = nn.Linear(a.shape[1], a.shape[0]).double()
        self.head = nn.Linear(a.shape[0], num_classes).double()
        with torch.no_grad():
            self.body.weight.copy_(torch.from_numpy(a))
            self.body.bias.copy_(torch.from_numpy(a_bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


# ----------------------------------------------------------------------- π = softmax(L / T)
def test_teacher_weights_is_the_softmax_of_scores_over_the_temperature():
    # L_2 − L_1 = T·ln 2 → π_2 = 2 π_1; a third teacher T·ln 3 above the first → 3 π_1
    pi = teacher_weights([0.5, 0.5 + 0.1 * np.log(2), 0.5 + 0.1 * np.log(3)], 0.1)
    np.testing.assert_allclose(pi, [1 / 6, 2 / 6, 3 / 6], rtol=1e-12)
    # a large T flattens π; a small one puts all the weight on the best
    np.testing.assert_allclose(teacher_weights([0.1, -0.3], 1e6), [0.5, 0.5], atol=1e-6)
    np.testing.assert_allclose(teacher_weights([0.1, -0.3], 1e-3), [1.0, 0.0], atol=1e-12)
    assert teacher_weights([-1e4, -1e4 + 1], 0.1).sum() == pytest.approx(1.0)  # no overflow


@pytest.mark.parametrize("scores,temperature,match", [
    ([], 0.1, "non-empty 1-D"), ([0.1, np.nan], 0.1, "finite"), ([0.1], 0.0, "temperature"),
    ([[0.1]], 0.1, "non-empty 1-D")])
def test_teacher_weights_rejects_bad_input(scores, temperature, match):
    with pytest.raises(ValueError, match=match):
        teacher_weights(scores, temperature)


# --------------------------------------------------------------- the loss and its gradient
def test_loss_value_and_gradient_match_a_direct_computation():
    """Two tiny teachers with known weights and LogME weights m_t, a linear student: the loss
    of tpred's pieces (split_head, Student, teacher_predictive, b_tuning_loss) and its gradient
    with respect to every student parameter equal the closed forms to 1e-6."""
    rng = np.random.default_rng(7)
    B, Din, Ds, C, lam, T = 6, 4, 3, 2, 100.0, 0.1
    x = rng.normal(size=(B, Din))
    y = np.array([0, 1, 1, 0, 1, 0])
    # teachers: features W_t x (3 and 2 dims), LogME weights m_t [C, D_t], scores L_t
    w1, w2 = rng.normal(size=(3, Din)), rng.normal(size=(2, Din))
    m1, m2 = rng.normal(size=(C, 3)), rng.normal(size=(C, 2))
    scores = np.array([0.20, 0.05])
    teachers = [Tiny(w1, np.zeros(3)), Tiny(w2, np.zeros(2))]
    # the student: known backbone A, a; the new head H, h set by hand; its LogME weights m_s
    a, a_bias = rng.normal(size=(Ds, Din)), rng.normal(size=Ds)
    head_w, head_b, m_s = rng.normal(size=(C, Ds)), rng.normal(size=C), rng.normal(size=(C, Ds))

    backbone, dim = split_head(Tiny(a, a_bias), name="student")
    student = Student(backbone, dim, C, torch.Generator().manual_seed(0)).double()
    with torch.no_grad():
        student.head.weight.copy_(torch.from_numpy(head_w))
        student.head.bias.copy_(torch.from_numpy(head_b))
    xt = torch.from_numpy(x)
    t_feats = [split_head(t)[0](xt).detach() for t in teachers]
    pi = torch.from_numpy(teacher_weights(scores, T))
    q = teacher_predictive(t_feats, [torch.from_numpy(m1), torch.from_numpy(m2)], pi)
    features, logits = student(xt)
    parts = b_tuning_loss(logits, torch.from_numpy(y), features, torch.from_numpy(m_s), q, lam)
    parts.total.backward()

    # the direct computation, numpy float64
    p_t = np.exp(scores / T) / np.exp(scores / T).sum()
    q_np = p_t[0] * (x @ w1.T) @ m1.T + p_t[1] * (x @ w2.T) @ m2.T           # [B, C]
    u = x @ a.T + a_bias                                                    # [B, Ds]
    z = u @ head_w.T + head_b                                               # [B, C]
    soft = np.exp(z - z.max(1, keepdims=True))
    soft /= soft.sum(1, keepdims=True)
    ce = -np.mean(np.log(soft[np.arange(B), y]))
    r = u @ m_s.T - q_np                                                    # [B, C]
    total = ce + lam * np.mean(r ** 2)
    dz = (soft - np.eye(C)[y]) / B                                          # dL/dz
    dp = 2 * lam * r / (B * C)                                              # dL/d(u m_sᵀ)
    du = dz @ head_w + dp @ m_s                                             # dL/du
    expected = {"head.weight": dz.T @ u, "head.bias": dz.sum(0),
                "backbone.body.weight": du.T @ x, "backbone.body.bias": du.sum(0)}

    np.testing.assert_allclose(q.numpy(), q_np, rtol=1e-6, atol=1e-12)
    assert parts.cross_entropy.item() == pytest.approx(ce, rel=1e-6)
    assert parts.regression.item() == pytest.approx(np.mean(r ** 2), rel=1e-6)
    assert parts.total.item() == pytest.approx(total, rel=1e-6)
    grads = dict(student.named_parameters())
    for key, want in expected.items():
        np.testing.assert_allclose(grads[key].grad.numpy(), want, rtol=1e-6, atol=1e-10,
                                   err_msg=key)
    # the teachers' term carries no gradient: their parameters were never touched
    assert all(p.grad is None for t in teachers for p in t.parameters())
    assert not q.requires_grad


def test_loss_without_teachers_is_the_cross_entropy():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    parts = b_tuning_loss(logits, labels, torch.zeros(2, 3), None, None, 100.0)
    assert parts.total.item() == pytest.approx(nn.functional.cross_entropy(logits, labels).item())
    assert parts.regression.item() == 0.0


def test_teacher_predictive_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="as many features, weights and π"):
        teacher_predictive([torch.zeros(2, 3)], [], torch.ones(1))
    with pytest.raises(ValueError, match="at least one"):
        teacher_predictive([], [], torch.ones(0))
