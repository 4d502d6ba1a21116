"""The B-Tuning objective (You et al., "Ranking and Tuning Pre-trained Models: A New Paradigm for
Exploiting Model Hubs", JMLR 2022, https://arxiv.org/abs/2110.10545, §5; thuml/LogME b_tuning.py).

Each pre-trained model k (the K teachers and the student s) gets a LogME fit on its frozen
features of the target's training images: posterior mean weights m_k [C, D_k] (`LogME.ms`) and
the score L_k. The teachers' posterior predictive mixture

    q(x) = Σ_t π_t f_t(x) m_tᵀ,    π = softmax(L / T)                        [B, C]

is the target the student's own LogME projection f_s(x) m_sᵀ is pulled toward, while its new head
learns the labels:

    loss = CE(head(f_s(x)), y) + λ · mean_{b,c} (f_s(x) m_sᵀ − q(x))²

m_s stays the LogME fit of the *pre-trained* student (computed once, never updated), and q(x)
comes from frozen teachers and carries no gradient. The reference's values: T = 0.1, λ = 100.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import nn


class BTuningLoss(NamedTuple):
    """The loss and its two parts (each a 0-d tensor; `total` carries the gradient)."""

    total: torch.Tensor
    cross_entropy: torch.Tensor
    regression: torch.Tensor  # the MSE term before λ


def teacher_weights(scores: Sequence[float] | np.ndarray, temperature: float) -> np.ndarray:
    """π = softmax(L / T) over the teachers' LogME scores.

    Args:
        scores: LogME score of each teacher [K] (finite).
        temperature: T > 0 (the reference uses 0.1: LogME differences of 0.1 weigh e-fold).

    Returns:
        π [K] float64, non-negative, summing to 1.

    Raises:
        ValueError: no score, a non-finite score, or T <= 0.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or scores.size == 0:
        raise ValueError(f"teacher_weights: scores must be a non-empty 1-D array, got shape "
                         f"{scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError(f"teacher_weights: scores must be finite, got {scores.tolist()}")
    if not temperature > 0:
        raise ValueError(f"teacher_weights: temperature must be > 0, got {temperature!r}")
    z = scores / temperature
    e = np.exp(z - z.max())                      # shifted: exact softmax without overflow
    return e / e.sum()


def teacher_predictive(teacher_features: Sequence[torch.Tensor],
                       teacher_ms: Sequence[torch.Tensor], pi: torch.Tensor) -> torch.Tensor:
    """q = Σ_t π_t f_t m_tᵀ, computed without gradient.

    Shapes: teacher_features K × [B, D_t]; teacher_ms K × [C, D_t]; pi [K] -> [B, C].

    Raises:
        ValueError: the three lengths differ, or no teacher.
    """
    if not len(teacher_features) == len(teacher_ms) == len(pi) or not len(pi):
        raise ValueError(f"teacher_predictive: need as many features, weights and π entries "
                         f"(at least one), got {len(teacher_features)}, {len(teacher_ms)}, "
                         f"{len(pi)}")
    with torch.no_grad():
        q = pi[0] * (teacher_features[0] @ teacher_ms[0].T)               # [B, C]
        for k in range(1, len(pi)):
            q = q + pi[k] * (teacher_features[k] @ teacher_ms[k].T)
    return q


def b_tuning_loss(logits: torch.Tensor, labels: torch.Tensor, student_features: torch.Tensor,
                  student_m: torch.Tensor, target: torch.Tensor | None,
                  tradeoff: float) -> BTuningLoss:
    """CE(logits, labels) + λ · MSE(f_s m_sᵀ, q), the reference's loss (mean reductions).

    Args:
        logits: the student head's output [B, C].
        labels: 0..C−1 [B].
        student_features: f_s(x), the student backbone's output [B, D_s].
        student_m: the student's LogME posterior mean weights m_s [C, D_s] (constant).
        target: the teachers' mixture q [B, C] (`teacher_predictive`; detached here again), or
            None for plain fine-tuning (then the regression term is 0 and not computed).
        tradeoff: λ ≥ 0.

    Returns:
        `BTuningLoss(total, cross_entropy, regression)`.
    """
    ce = nn.functional.cross_entropy(logits, labels)
    if target is None:
        zero = ce.new_zeros(())
        return BTuningLoss(ce, ce, zero)
    mse = nn.functional.mse_loss(student_features @ student_m.T, target.detach())
    return BTuningLoss(ce + tradeoff * mse, ce, mse)
