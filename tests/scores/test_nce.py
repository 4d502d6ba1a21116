"""NCE: closed forms (deterministic map, independence, a hand case), range, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tpred.scores.nce import nce


def test_zero_when_target_is_a_function_of_the_source_label():
    z = np.array([0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 7])
    y = np.array(["even", "odd"])[z % 2]
    assert nce(z, y) == 0.0


def test_minus_log_c_when_independent_and_uniform():
    z, y = np.meshgrid(np.arange(5), np.arange(3))  # every (z, y) pair exactly once
    assert nce(z.ravel(), y.ravel()) == pytest.approx(-math.log(3), rel=1e-14)


def test_hand_computed():
    # z = 0: y = (0, 1, 0); z = 1: y = (1, 0, 0): P(y|z) = (2/3, 1/3) for both, P(z) = 1/2
    z = np.array([0, 0, 0, 1, 1, 1])
    y = np.array([0, 1, 0, 1, 0, 0])
    want = 2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)
    assert nce(z, y) == pytest.approx(want, rel=1e-14)


def test_matches_counting_definition():
    rng = np.random.default_rng(0)
    z, y = rng.integers(0, 12, 500), rng.integers(0, 4, 500)
    want = 0.0
    for a in np.unique(z):
        cond = np.bincount(y[z == a], minlength=4) / (z == a).sum()
        want += (z == a).mean() * sum(q * math.log(q) for q in cond if q > 0)
    assert nce(z, y) == pytest.approx(want, rel=1e-13)


def test_labels_remapped():
    rng = np.random.default_rng(1)
    z, y = rng.integers(0, 5, 80), np.arange(80) % 3
    base = nce(z, y)
    assert nce(z * 10 + 3, np.array(["a", "b", "c"])[y]) == pytest.approx(base, rel=1e-14)
    assert nce(z.astype(float), y) == pytest.approx(base, rel=1e-14)


def test_errors():
    y = np.arange(10) % 2
    with pytest.raises(ValueError, match="1-D"):
        nce(np.zeros((10, 2)), y)
    with pytest.raises(ValueError, match="non-empty"):
        nce(np.array([]), np.array([]))
    with pytest.raises(ValueError, match="NaN or inf"):
        nce(np.r_[np.zeros(9), np.nan], y)
    with pytest.raises(ValueError, match=r"labels must have shape \(10,\)"):
        nce(np.zeros(10), y[:-1])
    with pytest.raises(ValueError, match="at least 2 samples"):
        nce(np.zeros(10), np.r_[y[:-1], 9])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(4, 60), cs=st.integers(1, 8),
       classes=st.integers(2, 4))
def test_range_and_permutation_invariance(seed, n, cs, classes):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    if np.bincount(y).min() < 2:
        y = np.arange(n) % 2
    z = rng.integers(0, cs, n)
    value = nce(z, y)
    assert -math.log(len(np.unique(y))) - 1e-12 <= value <= 0.0
    perm = rng.permutation(n)
    assert nce(z[perm], y[perm]) == pytest.approx(value, rel=1e-12, abs=1e-15)
