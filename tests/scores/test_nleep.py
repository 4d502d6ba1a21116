"""N-LEEP: the LEEP step by hand, seeding semantics, closed forms, invariances."""

from __future__ import annotations

import numpy as np
import pytest

from tpred.scores.nleep import _leep_terms, nleep


def _blobs(seed=0, n=48, d=4, classes=3, sep=2.0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    return rng.normal(size=(n, d)) + sep * y[:, None], y


def test_leep_step_by_hand():
    # joint P(y, z) = [[.5, 0], [.25, .25]], P(z) = [.75, .25], P(y | z) = [[2/3, 0], [1/3, 1]]
    theta = np.array([[1.0, 0.0], [0.5, 0.5]])
    np.testing.assert_allclose(_leep_terms(theta, np.array([0, 1]), 2), [2 / 3, 2 / 3])
    # a component no sample uses (P(z) = 0) adds nothing instead of 0/0
    padded = np.hstack([theta, np.zeros((2, 1))])
    np.testing.assert_allclose(_leep_terms(padded, np.array([0, 1]), 2), [2 / 3, 2 / 3])


def test_seed_reproduces_global_rng_and_is_deterministic():
    f, y = _blobs(sep=0.5)
    value = nleep(f, y, random_state=3)
    assert nleep(f, y, random_state=3) == value
    np.random.seed(3)  # the reference is unseeded: it draws from numpy's global RNG
    assert nleep(f, y, random_state=None) == value


def test_log_form_is_nonpositive_and_below_the_sfda_form():
    f, y = _blobs(sep=0.5)
    paper = nleep(f, y, random_state=0)
    plain = nleep(f, y, random_state=0, log=False)
    assert paper <= 0.0
    assert 0.0 < plain <= 1.0
    assert np.exp(paper) <= plain + 1e-12  # Jensen: exp(mean log p) <= mean p


def test_separated_tight_clusters_score_zero():
    f, y = _blobs(sep=100.0)
    assert nleep(f, y, random_state=0) == pytest.approx(0.0, abs=1e-6)
    assert nleep(f, y, random_state=0, log=False) == pytest.approx(1.0, abs=1e-6)


def test_constant_features_score_the_prior_entropy():
    y = np.array([0] * 4 + [1] * 8)
    prior = np.array([1 / 3, 2 / 3])
    assert nleep(np.ones((12, 3)), y) == pytest.approx(prior @ np.log(prior), rel=1e-12)
    assert nleep(np.ones((12, 3)), y, log=False) == pytest.approx(prior @ prior, rel=1e-12)


def test_relabel_dtype_and_no_mutation():
    f, y = _blobs(sep=0.5)
    value = nleep(f, y, random_state=0, component_ratio=2)
    assert nleep(f, 2 * y, random_state=0, component_ratio=2) == value  # labels {0, 2, 4}
    names = np.array(["x", "y", "z"])[y]
    assert nleep(f, names, random_state=0, component_ratio=2) == value
    f32 = f.astype(np.float32)
    copy = f32.copy()
    assert nleep(f32, y, random_state=0) == nleep(f32.astype(np.float64), y, random_state=0)
    np.testing.assert_array_equal(f32, copy)
    assert isinstance(value, float)


@pytest.mark.parametrize("ratio", [0, -1, 1.5, True, "5"])
def test_bad_component_ratio_raises(ratio):
    f, y = _blobs()
    with pytest.raises(ValueError, match="'component_ratio' parameter of nleep"):
        nleep(f, y, component_ratio=ratio)


def test_more_components_than_samples_raises():
    f, y = _blobs(n=12)
    with pytest.raises(ValueError, match="15 mixture components exceed the 12 samples"):
        nleep(f, y, component_ratio=5)
