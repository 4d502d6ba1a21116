"""The gnn's learning scale (`tpred/models/gnn/target.py`), against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from tpred.config import GNNConfig
from tpred.models.gnn.target import from_target, to_target


def test_zero_squeeze_is_accuracy_units():
    acc = np.array([0.0, 0.3, 1.0])
    assert to_target(acc, 0.0) is acc
    np.testing.assert_array_equal(from_target(np.array([-0.2, 0.4, 1.3]), 0.0), [0.0, 0.4, 1.0])


def test_hand_values():
    # ε = 0.1: a = 0 -> logit(0.1) = ln(1/9), a = 1 -> ln 9, a = 0.5 -> 0, a = 0.25 -> logit(0.3)
    z = to_target(np.array([0.0, 1.0, 0.5, 0.25]), 0.1)
    np.testing.assert_allclose(z, [-np.log(9.0), np.log(9.0), 0.0, np.log(0.3 / 0.7)],
                               atol=1e-12)
    # and back: sigmoid(ln 9) = 0.9 -> (0.9 - 0.1) / 0.8 = 1
    np.testing.assert_allclose(from_target(z, 0.1), [0.0, 1.0, 0.5, 0.25], atol=1e-12)


@pytest.mark.parametrize("squeeze", [0.01, 0.05, 0.3])
def test_round_trip_increasing_and_clipped(squeeze):
    acc = np.linspace(0.0, 1.0, 101)
    z = to_target(acc, squeeze)
    assert np.all(np.diff(z) > 0) and np.isfinite(z).all()
    np.testing.assert_allclose(from_target(z, squeeze), acc, atol=1e-12)
    # beyond the squeezed ends the inverse is clipped to [0, 1] (a prediction above 1)
    ends = from_target(np.array([z[0] - 1.0, z[-1] + 1.0, -50.0, 50.0]), squeeze)
    np.testing.assert_array_equal(ends, [0.0, 1.0, 0.0, 1.0])
    # out-of-range accuracies (round-off) are clipped before the logit
    np.testing.assert_array_equal(to_target(np.array([-1e-9, 1 + 1e-9]), squeeze), z[[0, -1]])


@pytest.mark.parametrize("acc, eps, scale", [(0.5, 0.05, 0.35), (0.85, 0.05, 0.35),
                                             (0.3, 0.01, 1.0), (0.97, 0.2, 2.0)])
def test_scale_slope_by_hand_and_round_trip(acc, eps, scale):
    # dz/da = s (1 - 2ε) / (q (1 - q)), q = ε + (1 - 2ε) a; e.g. a = 0.5, ε = 0.05, s = 0.35:
    # 0.35 * 0.9 / 0.25 = 1.26
    q = eps + (1 - 2 * eps) * acc
    h = 1e-6
    z = to_target(np.array([acc - h, acc + h]), eps, scale)
    assert (z[1] - z[0]) / (2 * h) == pytest.approx(scale * (1 - 2 * eps) / (q * (1 - q)),
                                                    rel=1e-6)
    if (acc, eps, scale) == (0.5, 0.05, 0.35):
        assert (z[1] - z[0]) / (2 * h) == pytest.approx(1.26, rel=1e-6)
    grid = np.linspace(0, 1, 11)
    np.testing.assert_allclose(from_target(to_target(grid, eps, scale), eps, scale), grid,
                               atol=1e-12)
    np.testing.assert_allclose(to_target(grid, eps, scale), scale * to_target(grid, eps),
                               atol=1e-12)


def test_config_bounds():
    assert GNNConfig(logit_squeeze=0.0).logit_squeeze == 0.0
    for bad in (-0.01, 0.5, float("nan")):
        with pytest.raises(ValueError, match="logit_squeeze"):
            GNNConfig(logit_squeeze=bad)
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="logit_scale"):
            GNNConfig(logit_scale=bad)
