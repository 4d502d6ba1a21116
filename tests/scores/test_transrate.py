"""TransRate: a closed form, TLlib's D × D definition (both Gram paths), invariances, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tpred.scores.transrate import transrate


def coding_rate_direct(z, eps):
    n, d = z.shape
    return 0.5 * np.linalg.slogdet(np.eye(d) + z.T @ z / (n * eps))[1]


def transrate_direct(f, y, eps=1e-4):
    """TLlib's form written out: column-centred F, D × D log dets, 1/C class weights."""
    z = f - f.mean(axis=0)
    classes = np.unique(y)
    return coding_rate_direct(z, eps) - np.mean([coding_rate_direct(z[y == c], eps)
                                                 for c in classes])


@pytest.mark.parametrize("pad", [0, 5])
def test_simplex_vertices_closed_form(pad):
    # three classes at e_1, e_2, e_3 (two samples each): ZᵀZ/N has eigenvalues 1/3, 1/3, 0 and
    # each class block is rank one with ‖e_c − μ‖² = 2/3; zero columns change nothing.
    y = np.repeat([0, 1, 2], 2)
    f = np.hstack([np.eye(3)[y], np.zeros((6, pad))])  # pad = 5: N = 6 < D = 8 (N × N path)
    eps = 1e-4
    want = math.log(1 + 1 / (3 * eps)) - 0.5 * math.log(1 + 2 / (3 * eps))
    assert transrate(f, y, eps=eps) == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize(("n", "d", "classes"), [(120, 6, 3), (90, 20, 3), (30, 50, 2)])
def test_matches_direct_definition(n, d, classes):
    # (120, 6): n_c ≥ D; (90, 20): n_c = 30 ≥ D; (30, 50): N < D and n_c < D (Sylvester)
    rng = np.random.default_rng(d)
    y = np.arange(n) % classes
    f = rng.normal(size=(n, d)) + rng.normal(size=(classes, d))[y] + 2.0
    for eps in (1e-4, 0.5):
        assert transrate(f, y, eps=eps) == pytest.approx(transrate_direct(f, y, eps), rel=1e-10)


def test_constant_features_give_zero():
    assert transrate(np.full((12, 4), -1.5), np.arange(12) % 3) == 0.0


def test_uneven_classes_mix_both_paths():
    rng = np.random.default_rng(3)
    y = np.repeat([0, 1, 2], [4, 15, 40])  # n_c < D = 10 for class 0 only
    f = rng.normal(size=(59, 10)) + y[:, None]
    assert transrate(f, y) == pytest.approx(transrate_direct(f, y), rel=1e-10)


def test_invariances_float32_and_inputs_untouched():
    rng = np.random.default_rng(4)
    y = np.arange(60) % 3
    f = rng.normal(size=(60, 5)) + y[:, None]
    base = transrate(f, y)
    perm = rng.permutation(60)
    assert transrate(f[perm], y[perm]) == pytest.approx(base, rel=1e-10)
    assert transrate(f, np.array(["u", "v", "w"])[y]) == pytest.approx(base, rel=1e-13)
    f32 = f.astype(np.float32)
    copy = f32.copy()
    assert transrate(f32, y) == pytest.approx(transrate(f32.astype(np.float64), y), rel=1e-12)
    np.testing.assert_array_equal(f32, copy)


def test_errors():
    rng = np.random.default_rng(5)
    f, y = rng.normal(size=(20, 3)), np.arange(20) % 2
    for eps in (0, -1.0, float("nan"), "1e-4"):
        with pytest.raises(ValueError, match="eps must be a finite number > 0"):
            transrate(f, y, eps=eps)
    with pytest.raises(ValueError, match="at least 2 samples"):
        transrate(f, np.r_[y[:-1], 4])
    bad = f.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        transrate(bad, y)
    with pytest.raises(ValueError, match=r"labels must have shape \(20,\)"):
        transrate(f, y[:3])
    with pytest.raises(ValueError, match="2-D"):
        transrate(f[None], y)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(6, 40), d=st.integers(1, 12),
       classes=st.integers(2, 3))
def test_finite_and_permutation_invariant(seed, n, d, classes):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    f = rng.normal(size=(n, d)) + y[:, None]
    value = transrate(f, y)
    perm = rng.permutation(n)
    assert math.isfinite(value)
    assert transrate(f[perm], y[perm]) == pytest.approx(value, rel=1e-8, abs=1e-9)
