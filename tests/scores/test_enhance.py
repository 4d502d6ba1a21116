"""PED and Spread/Attract: steps by hand on 1-D cases, gates, fallbacks, errors."""

from __future__ import annotations

import numpy as np
import pytest

from tpred.scores.enhance import ped, spread_attract

# two classes on a line: class 0 = {0, 2} (mean 1, radius 1), class 1 = {3, 5} (mean 4, radius 1)
LINE = np.array([[0.0], [2.0], [3.0], [5.0]])
PAIRS = np.array([0, 0, 1, 1])
UNIT = np.array([[-1.0], [1.0]])  # general_X with mean 0 and biased std 1: Z = X


def test_ped_one_step_by_hand():
    # nu (R_0 + R_1) - d = 2 * 2 - 3 = 1: overlap 1, step 1/2 * 0.1^2 * 1 * 1 = 0.005 each way
    out = ped(LINE, PAIRS, general_X=UNIT, nsigma=2.0, max_steps=1)
    np.testing.assert_allclose(out.ravel(), [-0.005, 1.995, 3.005, 5.005], rtol=1e-12)


def test_ped_second_step_by_hand():
    # means 0.995 and 4.005: overlap 4 - 3.01 = 0.99, step 0.00495; change ratio 0.99 > 0.5
    out = ped(LINE, PAIRS, general_X=UNIT, nsigma=2.0, max_steps=2)
    np.testing.assert_allclose(out.ravel(), [-0.00995, 1.99005, 3.00995, 5.00995], rtol=1e-12)


def test_ped_exit_rule_discards_the_weak_step():
    # 1/2 dt^2 k = 1: the first step removes the whole overlap, the second has change 0 < 0.5
    out = ped(LINE, PAIRS, general_X=UNIT, nsigma=2.0, time_step=np.sqrt(2.0))
    np.testing.assert_allclose(out.ravel(), [-1.0, 1.0, 4.0, 6.0], rtol=1e-12)


def test_ped_moves_in_rescaled_units():
    # general_X with std 2: Z = X / 2, overlap 0.5 in Z, step 0.0025 in Z = 0.005 in X
    out = ped(LINE, PAIRS, general_X=[[-2.0], [2.0]], nsigma=2.0, max_steps=1)
    np.testing.assert_allclose(out.ravel(), [-0.005, 1.995, 3.005, 5.005], rtol=1e-12)


def test_ped_without_overlap_returns_the_features_unchanged():
    f = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 10.0], [11.0, 10.0]])
    out = ped(f, [0, 0, 1, 1])  # general_X=None: the features' own statistics
    np.testing.assert_array_equal(out, f)
    assert out is not f
    np.testing.assert_array_equal(ped(np.ones((6, 2)), np.arange(6) % 2), np.ones((6, 2)))


def test_ped_default_fallback_relabel_dtype_and_no_mutation():
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    f = rng.normal(size=(60, 5)) + 0.5 * y[:, None]
    out = ped(f, y)
    assert out.shape == f.shape and out.dtype == np.float64 and not np.allclose(out, f)
    np.testing.assert_array_equal(ped(f, y, general_X=f), out)
    np.testing.assert_array_equal(ped(f, np.array(["p", "q", "r"])[y]), out)
    f32 = f.astype(np.float32)
    copy = f32.copy()
    np.testing.assert_array_equal(ped(f32, y), ped(f32.astype(np.float64), y))
    np.testing.assert_array_equal(f32, copy)


def test_ped_errors():
    with pytest.raises(ValueError, match="classes 0 and 1 .* have identical means"):
        ped(np.array([[-1.0], [1.0], [-2.0], [2.0]]), [0, 0, 1, 1])
    with pytest.raises(ValueError, match=r"general_X must have shape \[M >= 1, 1\], got \(2, 2\)"):
        ped(LINE, PAIRS, general_X=np.ones((2, 2)))
    with pytest.raises(ValueError, match="ped: general_X contains NaN or inf"):
        ped(LINE, PAIRS, general_X=[[np.nan]])
    for name, value in [("max_steps", 0), ("max_steps", 2.5), ("time_step", 0.0),
                        ("eps", -1.0), ("constant", np.inf), ("nsigma", -0.1),
                        ("exit_ratio", "0.5")]:
        with pytest.raises(ValueError, match=f"'{name}' parameter of ped"):
            ped(LINE, PAIRS, **{name: value})


def test_sa_gate_off_returns_the_features_unchanged():
    # top covariance eigenvalue 0.26 <= 4.1447: the transform does not run
    f = 0.1 * np.array([[0.0], [2.0], [10.0], [12.0]])
    out = spread_attract(f, PAIRS)
    np.testing.assert_array_equal(out, f)
    assert out is not f and out.dtype == np.float64


@pytest.mark.parametrize("variance, on", [(4.14, False), (4.15, True)])
def test_sa_gate_threshold(variance, on):
    # x = +-a with a^2 = variance; when on: PCA is +-x, R = 0, d = 2a, each class moves 0.01 a
    a = np.sqrt(variance)
    f = np.array([[-a], [-a], [a], [a]])
    out = spread_attract(f, PAIRS)
    expected = a * (1.01 if on else 1.0)
    np.testing.assert_allclose(np.abs(out).ravel(), [expected] * 4, rtol=1e-12)


def test_sa_attract_by_hand():
    # variance 26 > 4.14: PCA gives +-[-6, -4, 4, 6]; means -+5, R = 1, d = 10,
    # coefficient 0.005 (10 - 0.6 * 2) = 0.044 away from the other class
    out = spread_attract(np.array([[0.0], [2.0], [10.0], [12.0]]), PAIRS)
    np.testing.assert_allclose(np.sort(np.abs(out.ravel())), [4.044, 4.044, 6.044, 6.044],
                               rtol=1e-12)
    assert out[0, 0] * out[2, 0] < 0  # the classes stay on opposite sides


def test_sa_spread_by_hand():
    # spread: [-7, -3, 3, 7] (one unit from the means), R = 2, 0.005 (10 - 0.6 * 4) = 0.038
    out = spread_attract(np.array([[0.0], [2.0], [10.0], [12.0]]), PAIRS, spread=True)
    np.testing.assert_allclose(np.sort(np.abs(out.ravel())), [3.038, 3.038, 7.038, 7.038],
                               rtol=1e-12)


def test_sa_output_dimensions_and_inputs():
    rng = np.random.default_rng(0)
    y = np.arange(100) % 3
    f = 3 * rng.normal(size=(100, 80)) + y[:, None]
    assert spread_attract(f, y).shape == (100, 64)
    assert spread_attract(f[:, :10], y).shape == (100, 10)  # D < 64: min(N, D) components
    assert spread_attract(f[:40], y[:40]).shape == (40, 40)  # N < 64
    f32 = f.astype(np.float32)
    copy = f32.copy()
    np.testing.assert_array_equal(spread_attract(f32, y), spread_attract(f32.astype(float), y))
    np.testing.assert_array_equal(f32, copy)
    np.testing.assert_array_equal(spread_attract(f, 2 * y), spread_attract(f, y))


def test_sa_errors():
    # two classes with the same mean 0 and radius 10: the attract direction is undefined
    f = np.array([[-10.0], [10.0], [-10.0], [10.0]])
    with pytest.raises(ValueError, match="spread_attract: classes 0 and 1 .* identical means"):
        spread_attract(f, PAIRS)
    with pytest.raises(ValueError, match="'alpha' parameter of spread_attract"):
        spread_attract(LINE, PAIRS, alpha=-1.0)
    with pytest.raises(ValueError, match="'sigma' parameter of spread_attract"):
        spread_attract(LINE, PAIRS, sigma=np.nan)
