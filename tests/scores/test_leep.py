"""LEEP: a hand-computed case, the O(N·Cs) path against the dense definition, properties, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tpred.scores.leep import leep


def softmax_probs(n=120, cs=7, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    logits = rng.normal(size=(n, cs)) + 2.0 * np.eye(classes, cs)[y]
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True), y


def leep_dense(theta, y):
    """The definition with the full N × Ct × Cs broadcast, as the references compute it."""
    n = len(y)
    onehot = np.eye(y.max() + 1)[y]                                        # [N, Ct]
    joint = (onehot[:, :, None] * theta[:, None, :]).sum(axis=0) / n       # [Ct, Cs]
    conditional = joint / joint.sum(axis=0)
    return np.mean(np.log((theta @ conditional.T)[np.arange(n), y]))


def test_hand_computed_two_by_two():
    theta = np.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7], [0.1, 0.9]])
    y = np.array([0, 0, 1, 1])
    # P(y, z) = [[1.4, 0.6], [0.4, 1.6]] / 4, P(z) = [0.45, 0.55]
    # P(y|z): y=0 -> [7/9, 3/11], y=1 -> [2/9, 8/11]
    p = [0.8 * 7 / 9 + 0.2 * 3 / 11, 0.6 * 7 / 9 + 0.4 * 3 / 11,
         0.3 * 2 / 9 + 0.7 * 8 / 11, 0.1 * 2 / 9 + 0.9 * 8 / 11]
    assert leep(theta, y) == pytest.approx(np.mean(np.log(p)), rel=1e-14)


def test_perfect_source_head_scores_zero():
    y = np.repeat([0, 1, 2], 4)
    assert leep(np.eye(3)[y], y) == pytest.approx(0.0, abs=1e-15)


def test_uninformative_source_head_scores_log_class_prior():
    y = np.repeat([0, 1, 2, 3], [2, 2, 4, 8])
    theta = np.full((16, 5), 0.2)  # the same prediction for every sample: p_i = P(y_i)
    prior = np.bincount(y) / 16
    assert leep(theta, y) == pytest.approx(np.mean(np.log(prior[y])), rel=1e-14)


def test_matches_dense_definition():
    theta, y = softmax_probs(200, 9, 4, seed=1)
    assert leep(theta, y) == pytest.approx(leep_dense(theta, y), rel=1e-13)


def test_all_zero_source_class_is_skipped():
    theta, y = softmax_probs(60, 4, 3, seed=2)
    padded = np.hstack([theta[:, :2], np.zeros((60, 1)), theta[:, 2:]])
    assert leep(padded, y) == pytest.approx(leep(theta, y), rel=1e-14)


def test_labels_remapped_float32_and_inputs_untouched():
    theta, y = softmax_probs(90, 6, 3, seed=3)
    base = leep(theta, y)
    assert leep(theta, np.array(["x", "b", "k"])[y]) == pytest.approx(base, rel=1e-14)
    assert leep(theta, 2 * y) == pytest.approx(base, rel=1e-14)
    t32 = theta.astype(np.float32)
    copy = t32.copy()
    assert leep(t32, y) == pytest.approx(leep(t32.astype(np.float64), y), rel=1e-14)
    np.testing.assert_array_equal(t32, copy)


def test_errors():
    theta, y = softmax_probs(30, 4, 2)
    with pytest.raises(ValueError, match="non-negative"):
        leep(np.where(theta > 0.5, theta, -0.01), y)
    with pytest.raises(ValueError, match=r"sum to 1 \(±0.001\); row 0 .*not logits"):
        leep(2 * theta, y)  # unnormalised scores
    bad = theta.copy()
    bad[4, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN or inf \(row 4\)"):
        leep(bad, y)
    with pytest.raises(ValueError, match=r"probs must be 2-D"):
        leep(theta[:, 0], y)
    with pytest.raises(ValueError, match=r"probs must be non-empty"):
        leep(np.empty((0, 3)), np.empty(0))
    with pytest.raises(ValueError, match=r"labels must have shape \(30,\)"):
        leep(theta, y[:-2])
    with pytest.raises(ValueError, match="at least 2 samples"):
        leep(theta, np.r_[y[:-1], 5])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(4, 40), cs=st.integers(1, 6),
       classes=st.integers(2, 4))
def test_non_positive_finite_and_permutation_invariant(seed, n, cs, classes):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    if np.bincount(y).min() < 2:
        y = np.arange(n) % 2
    logits = 3 * rng.normal(size=(n, cs))
    theta = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    value = leep(theta, y)
    assert math.isfinite(value) and value <= 1e-12
    perm = rng.permutation(n)
    assert leep(theta[perm], y[perm]) == pytest.approx(value, rel=1e-12, abs=1e-14)
