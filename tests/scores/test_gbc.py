"""GBC: closed forms, hand-computed Bhattacharyya distances, invariances."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from tpred.scores.gbc import gbc

# not `import tpred.scores.gbc as ...`: the package attribute `gbc` is the function
gbc_module = importlib.import_module("tpred.scores.gbc")


def _blobs(seed=0, n=60, d=5, classes=3, sep=1.0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    return rng.normal(size=(n, d)) + sep * y[:, None], y


@pytest.mark.parametrize("kind", ["spherical", "diagonal"])
def test_far_apart_tight_classes_score_zero(kind):
    y = np.arange(40) % 4
    f = 1000.0 * np.eye(4)[y] + np.random.default_rng(0).normal(scale=0.1, size=(40, 4))
    assert gbc(f, y, gaussian_type=kind) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("kind", ["spherical", "diagonal"])
def test_identical_classes_score_minus_c_times_c_minus_one(kind):
    block = np.random.default_rng(1).normal(size=(7, 3))
    f, y = np.vstack([block] * 3), np.repeat([0, 1, 2], 7)  # three copies of the same class
    assert gbc(f, y, gaussian_type=kind) == pytest.approx(-6.0, rel=1e-12)
    # constant features: every class is the same floored Gaussian
    assert gbc(np.ones((12, 4)), np.arange(12) % 4, gaussian_type=kind) == -12.0


def test_two_classes_by_hand():
    # class 0: mean (1, 2), biased var (1, 4); class 1: mean (4, 2), biased var (1, 1)
    f = np.array([[0.0, 0.0], [2.0, 4.0], [3.0, 1.0], [5.0, 3.0]])
    y = np.array([0, 0, 1, 1])
    diagonal = 9 / 8 + 0.5 * (np.log(1) + np.log(2.5) - 0.5 * np.log(4) - 0.5 * np.log(1))
    assert gbc(f, y, "diagonal") == pytest.approx(-2 * np.exp(-diagonal), rel=1e-12)
    # spherical: s_0 = 2.5, s_1 = 1, s_bar = 1.75; the log term is not multiplied by D
    spherical = 9 / (8 * 1.75) + 0.5 * (np.log(1.75) - 0.5 * np.log(2.5) - 0.5 * np.log(1.0))
    assert gbc(f, y) == pytest.approx(-2 * np.exp(-spherical), rel=1e-12)


def test_variance_is_biased_and_floored():
    # class 0 is constant (variance 0 -> floor 1e-4); class 1 has biased variance 1e-4
    f = np.array([[0.0], [0.0], [0.01], [0.03]])
    expected = -2 * np.exp(-(0.02**2) / (8 * 1e-4))
    assert gbc(f, [0, 0, 1, 1]) == pytest.approx(expected, rel=1e-9)


def test_chunked_pairs_match_one_block(monkeypatch):
    f, y = _blobs(classes=6, d=4)
    whole = {k: gbc(f, y, k) for k in ("spherical", "diagonal")}
    monkeypatch.setattr(gbc_module, "_CHUNK_ELEMENTS", 1)  # one class row per block
    for kind, value in whole.items():
        assert gbc(f, y, kind) == pytest.approx(value, rel=1e-13)


def test_range_relabel_order_dtype_and_no_mutation():
    f, y = _blobs()
    value = gbc(f, y)
    assert -6.0 <= value <= 0.0
    perm = np.random.default_rng(2).permutation(len(y))
    assert gbc(f[perm], y[perm]) == pytest.approx(value, rel=1e-12)
    names = np.array(["cat", "dog", "emu"])[y]
    assert gbc(f, names) == pytest.approx(value, rel=1e-12)
    assert gbc(f, 2 * y) == pytest.approx(value, rel=1e-12)  # labels {0, 2, 4}
    f32, copy = f.astype(np.float32), f.astype(np.float32).copy()
    assert gbc(f32, y) == pytest.approx(gbc(f32.astype(np.float64), y), rel=1e-12)
    np.testing.assert_array_equal(f32, copy)
    assert isinstance(value, float)


def test_bad_arguments_raise():
    f, y = _blobs()
    with pytest.raises(ValueError, match="'gaussian_type' parameter of gbc"):
        gbc(f, y, gaussian_type="full")
    with pytest.raises(ValueError, match="gbc: every class needs at least 2"):
        gbc(f[:4], [0, 0, 0, 1])
