"""LogME: agreement with a per-class loop, the N < D fix against a dense evidence, invariances,
the torch path, predict, errors."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tpred.errors import NotFittedError
from tpred.scores.logme import LogME, logme


def _load_per_class_loop():
    """The straightforward per-class implementation kept in bench/bench_scores.py."""
    path = Path(__file__).resolve().parents[2] / "bench" / "bench_scores.py"
    spec = importlib.util.spec_from_file_location("_bench_scores", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.logme_per_class_loop


logme_per_class_loop = _load_per_class_loop()


def blobs(n=200, d=12, classes=4, seed=0, sep=1.0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    rng.shuffle(y)
    f = rng.normal(size=(n, d)) + sep * rng.normal(size=(classes, d))[y]
    return f.astype(dtype), y


def dense_evidence(f, t, alpha, beta, m):
    """L(α, β) at weights m with the full D-term log det A (A = αI + βFᵀF), divided by N."""
    n, d = f.shape
    a = alpha * np.eye(d) + beta * f.T @ f
    sign, logdet = np.linalg.slogdet(a)
    assert sign > 0
    res2, m2 = np.sum((t - f @ m) ** 2), m @ m
    return (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - n / 2 * np.log(2 * np.pi)
            - beta / 2 * res2 - alpha / 2 * m2 - logdet / 2) / n


# ------------------------------------------------------------------ agreement with the loop
@pytest.mark.parametrize(("n", "d", "classes", "sep"), [
    (200, 12, 4, 1.0), (300, 40, 7, 0.3), (150, 5, 3, 3.0), (400, 64, 10, 0.0)])
def test_vectorised_equals_per_class_loop(n, d, classes, sep):
    f, y = blobs(n, d, classes, seed=n + d, sep=sep)
    score, alphas, betas, evidences = logme_per_class_loop(f, y)
    model = LogME(device="numpy")
    assert model.fit(f, y) == pytest.approx(score, rel=1e-12)
    np.testing.assert_allclose(model.evidences, evidences, rtol=1e-11)
    np.testing.assert_allclose(model.alphas, alphas, rtol=1e-11)
    np.testing.assert_allclose(model.betas, betas, rtol=1e-11)
    assert logme(f, y, device="numpy") == pytest.approx(score, rel=1e-12)


def test_targets_that_converge_at_different_passes_are_frozen_independently():
    # a class far from the others converges in few passes, overlapping ones take more: the
    # vectorised loop must give each target exactly what it would get alone
    f, y = blobs(300, 10, 5, seed=3, sep=0.2)
    f[y == 0] += 8.0
    onehot = np.eye(5)[y]
    together = LogME(regression=True, device="numpy")
    together.fit(f, onehot)
    alone = [logme(f, onehot[:, c], regression=True, device="numpy") for c in range(5)]
    np.testing.assert_allclose(together.evidences, alone, rtol=1e-13)
    # classification = regression on the indicator columns
    assert logme(f, y, device="numpy") == pytest.approx(np.mean(alone), rel=1e-13)


def test_evidence_equals_dense_formula_when_n_greater_than_d():
    f, y = blobs(120, 8, 3, seed=5)
    model = LogME(device="numpy")
    model.fit(f, y)
    for c in range(3):
        t = (y == c).astype(float)
        want = dense_evidence(f, t, model.alphas[c], model.betas[c], model.ms[c])
        assert model.evidences[c] == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize(("n", "d"), [(40, 100), (30, 30), (80, 200)])
def test_n_not_above_d_uses_full_log_det(n, d):
    # N ≤ D: log det A has D terms, D − N of them log α (thuml issue #23 / PR #24)
    f, y = blobs(n, d, 4, seed=d, sep=0.5)
    model = LogME(device="numpy")
    score = model.fit(f, y)
    for c in range(4):
        t = (y == c).astype(float)
        want = dense_evidence(f, t, model.alphas[c], model.betas[c], model.ms[c])
        assert model.evidences[c] == pytest.approx(want, rel=1e-8, abs=1e-10)
    # the uncorrected loop (k = N singular values in log det) is off by (D − N)/(2N)·log α
    loop_score = logme_per_class_loop(f, y)[0]
    missing = np.mean((d - n) / (2 * n) * np.log(model.alphas))
    assert loop_score - score == pytest.approx(missing, rel=1e-8, abs=1e-10)


def test_regression_matches_dense_formula_per_column():
    rng = np.random.default_rng(7)
    f = rng.normal(size=(90, 6))
    targets = f @ rng.normal(size=(6, 3)) + rng.normal(scale=0.5, size=(90, 3))
    model = LogME(regression=True, device="numpy")
    score = model.fit(f, targets)
    for k in range(3):
        want = dense_evidence(f, targets[:, k], model.alphas[k], model.betas[k], model.ms[k])
        assert model.evidences[k] == pytest.approx(want, rel=1e-9)
    assert score == pytest.approx(np.mean(model.evidences))
    assert logme(f, targets[:, 0], regression=True) == pytest.approx(model.evidences[0])


# ------------------------------------------------------------------ invariances and dtypes
def test_labels_are_remapped():
    f, y = blobs(120, 6, 2, seed=1)
    base = logme(f, y)
    assert logme(f, np.where(y == 1, 2, 0)) == pytest.approx(base, rel=1e-13)  # {0, 2}
    assert logme(f, np.array(["dog", "cat"])[y]) == pytest.approx(base, rel=1e-13)


def test_sample_order_does_not_matter():
    f, y = blobs(150, 9, 3, seed=2)
    perm = np.random.default_rng(0).permutation(150)
    assert logme(f[perm], y[perm]) == pytest.approx(logme(f, y), rel=1e-10)


def test_float32_input_is_accumulated_in_float64():
    f, y = blobs(200, 16, 4, seed=4, dtype=np.float32)
    assert logme(f, y) == pytest.approx(logme(f.astype(np.float64), y), rel=1e-12)


def test_inputs_are_not_mutated():
    f, y = blobs(100, 120, 3, seed=6, dtype=np.float32)  # the N ≤ D path
    f2, y2 = blobs(100, 8, 3, seed=6)                     # the N > D path
    copies = [a.copy() for a in (f, y, f2, y2)]
    LogME().fit(f, y)
    LogME().fit(f2, y2)
    for a, b in zip((f, y, f2, y2), copies, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("n", "d"), [(120, 10), (40, 90)])
def test_torch_path_equals_numpy_path(n, d):
    pytest.importorskip("torch")
    f, y = blobs(n, d, 3, seed=8, dtype=np.float32)
    a, b = LogME(device="numpy"), LogME(device="cpu")
    assert b.fit(f, y) == pytest.approx(a.fit(f, y), rel=1e-10)
    np.testing.assert_allclose(b.ms, a.ms, rtol=1e-8, atol=1e-12)
    targets = np.random.default_rng(0).normal(size=(n, 2))
    assert logme(f, targets, regression=True, device="cpu") == pytest.approx(
        logme(f, targets, regression=True, device="numpy"), rel=1e-10)


def test_absent_target_and_exact_fit_stay_finite():
    # an all-zero regression target, and N ≤ D where every target can be fitted exactly
    f, y = blobs(20, 50, 2, seed=9)
    assert math.isfinite(logme(f, np.zeros(20), regression=True))
    assert math.isfinite(logme(f, y))


@pytest.mark.parametrize(("n", "d"), [(20, 5), (6, 9)])
def test_constant_and_zero_features(n, d):
    # F = 0: α drops out and the maximum over β is at β = N/‖t‖², so for a class of size n_c
    # L/N = ½·log(N/n_c) − ½ − ½·log 2π (up to the 1e-5 guard)
    y = np.arange(n) % 2
    counts = np.bincount(y)
    want = np.mean(0.5 * np.log(n / counts) - 0.5 - 0.5 * np.log(2 * np.pi))
    assert logme(np.zeros((n, d)), y) == pytest.approx(want, rel=1e-5)
    # constant features: rank one, singular value 3·√(N·D), the same as one column of 3·√D;
    # the zero eigenvalues enter only through log α terms that cancel, so D itself drops out
    value = logme(np.full((n, d), 3.0), y)
    assert math.isfinite(value)
    assert value == pytest.approx(logme(np.full((n, 1), 3.0 * np.sqrt(d)), y), rel=1e-10)


# ------------------------------------------------------------------ predict
def test_predict_returns_original_labels_and_fits_separable_data():
    f, y = blobs(200, 5, 3, seed=10, sep=6.0)
    names = np.array(["a", "b", "c"])
    model = LogME()
    model.fit(f, names[y])
    assert (model.predict(f) == names[y]).mean() > 0.95
    assert model.ms.shape == (3, 5) and model.alphas.shape == model.betas.shape == (3,)


def test_predict_regression_shapes():
    rng = np.random.default_rng(11)
    f = rng.normal(size=(50, 4))
    w = rng.normal(size=4)
    model = LogME(regression=True)
    model.fit(f, f @ w)
    assert model.predict(f).shape == (50,)
    np.testing.assert_allclose(model.predict(f), f @ w, atol=1e-3)
    model.fit(f, np.stack([f @ w, -(f @ w)], axis=1))
    assert model.predict(f[:7]).shape == (7, 2)


def test_predict_errors():
    with pytest.raises(NotFittedError, match="not fitted"):
        LogME().predict(np.ones((3, 2)))
    model = LogME()
    model.fit(*blobs(30, 4, 2))
    with pytest.raises(ValueError, match="must have 4 columns"):
        model.predict(np.ones((3, 5)))


# ------------------------------------------------------------------ errors
def test_errors():
    f, y = blobs(30, 4, 2)
    with pytest.raises(ValueError, match="at least 2 samples"):
        logme(f, np.r_[y[:-1], 7])
    with pytest.raises(ValueError, match="at least 2 classes"):
        logme(f, np.zeros(30))
    bad = f.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN or inf \(1 row"):
        logme(bad, y)
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        logme(bad.T.copy(), np.repeat([0, 1], 2))  # the N ≤ D path
    with pytest.raises(ValueError, match=r"labels must have shape \(30,\)"):
        logme(f, y[:-1])
    with pytest.raises(ValueError, match="2-D"):
        logme(f[:, 0], y)
    with pytest.raises(ValueError, match="non-empty"):
        logme(np.empty((0, 4)), np.empty(0))
    with pytest.raises(ValueError, match="numeric"):
        logme(np.full((30, 4), "x"), y)


def test_regression_target_errors():
    f, _ = blobs(30, 4, 2)
    with pytest.raises(ValueError, match="NaN or inf"):
        logme(f, np.r_[np.zeros(29), np.nan], regression=True)
    with pytest.raises(ValueError, match=r"shape \(30,\) or \(30, K\)"):
        logme(f, np.zeros(29), regression=True)
    with pytest.raises(ValueError, match="must be numeric"):
        logme(f, np.array(["a"] * 30), regression=True)


# ------------------------------------------------------------------ properties
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(6, 40), d=st.integers(1, 30),
       classes=st.integers(2, 3))
def test_finite_and_permutation_invariant(seed, n, d, classes):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    f = rng.normal(size=(n, d)) + y[:, None]
    perm = rng.permutation(n)
    value = logme(f, y, device="numpy")
    assert math.isfinite(value)
    assert logme(f[perm], y[perm], device="numpy") == pytest.approx(value, rel=1e-7, abs=1e-9)
