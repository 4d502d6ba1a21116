"""`zmean`: mean per-dataset z-scored accuracy per model, mapped back to each dataset's scale."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tpred.config import TrainConfig
from tpred.data.zoo import Zoo
from tpred.errors import NotFittedError
from tpred.models import make_predictor
from tpred.models.zmean import ZMeanPredictor


@pytest.fixture
def zoo() -> Zoo:
    """d0: m0..m2 at 0.5/0.7/0.9; d1: m0, m1 at 0.2/0.4; d2: m2 alone at 0.6; d3: no record."""
    records = pd.DataFrame({"model": ["m0", "m1", "m2", "m0", "m1", "m2"],
                            "dataset": ["d0", "d0", "d0", "d1", "d1", "d2"],
                            "accuracy": [0.5, 0.7, 0.9, 0.2, 0.4, 0.6]})
    datasets = pd.DataFrame({"dataset": ["d0", "d1", "d2", "d3"]})
    return Zoo.from_frames(None, datasets, records)


def test_zmean_by_hand(zoo):
    model = make_predictor("zmean", TrainConfig()).fit(zoo, zoo.known_pairs())
    assert isinstance(model, ZMeanPredictor)
    s0, s1 = np.sqrt(0.08 / 3), 0.1              # population stds of d0 and d1
    z0 = np.array([-0.2, 0.0, 0.2]) / s0         # d0's z-scores of m0, m1, m2
    z = {"m0": (z0[0] - 1) / 2, "m1": (z0[1] + 1) / 2, "m2": z0[2]}  # d2 (one record) skipped
    np.testing.assert_allclose(model.z_model_[["m0", "m1", "m2"]], list(z.values()))
    typical = (s0 + s1) / 2                      # d2 has no std of its own
    level = {"d0": np.mean([0.5 - s0 * z["m0"], 0.7 - s0 * z["m1"], 0.9 - s0 * z["m2"]]),
             "d1": np.mean([0.2 - s1 * z["m0"], 0.4 - s1 * z["m1"]]),
             "d2": 0.6 - typical * z["m2"]}
    scale = {"d0": s0, "d1": s1, "d2": typical}
    pairs = pd.DataFrame({"model": ["m2", "m1", "m0", "m0", "m9"],
                          "dataset": ["d1", "d2", "d0", "d3", "d0"]})
    fallback_level, fallback_scale = np.mean(list(level.values())), np.mean(list(scale.values()))
    expected = [level["d1"] + s1 * z["m2"], level["d2"] + typical * z["m1"],
                level["d0"] + s0 * z["m0"],
                fallback_level + fallback_scale * z["m0"],   # cold dataset: the fallback
                level["d0"]]                                 # unknown model: z = 0
    np.testing.assert_allclose(model.predict(pairs), expected)


def test_zmean_ignores_each_datasets_level_and_spread(zoo):
    """An increasing affine map per dataset changes no model's z-mean and no ranking."""
    base = ZMeanPredictor().fit(zoo, zoo.known_pairs())
    records = zoo.records.copy()
    a = records["dataset"].map({"d0": 0.05, "d1": -0.1, "d2": 0.2})
    b = records["dataset"].map({"d0": 0.5, "d1": 2.0, "d2": 1.0})
    records["accuracy"] = a + b * records["accuracy"]
    shifted = Zoo.from_frames(None, zoo.datasets.reset_index(), records)
    other = ZMeanPredictor().fit(shifted, shifted.known_pairs())
    np.testing.assert_allclose(other.z_model_, base.z_model_)
    pairs = pd.DataFrame({"model": ["m0", "m1", "m2"], "dataset": "d3"})
    assert (np.argsort(other.predict(pairs)) == np.argsort(base.predict(pairs))).all()


def test_zmean_of_a_constant_or_single_dataset_is_average():
    records = pd.DataFrame({"model": ["m0", "m1"], "dataset": ["d0", "d0"], "accuracy": 0.5})
    zoo = Zoo.from_frames(None, None, records)
    model = ZMeanPredictor().fit(zoo, zoo.known_pairs())
    np.testing.assert_array_equal(model.z_model_.to_numpy(), [0.0, 0.0])
    np.testing.assert_allclose(model.predict(zoo.known_pairs()), [0.5, 0.5])


def test_zmean_predict_before_fit_raises(zoo):
    with pytest.raises(NotFittedError, match="ZMeanPredictor is not fitted"):
        ZMeanPredictor().predict(zoo.known_pairs())


def test_zmean_fit_refuses_a_pair_without_a_record(zoo):
    pairs = pd.DataFrame({"model": ["m0"], "dataset": ["d3"]})
    with pytest.raises(ValueError, match=r"pair \['m0', 'd3'\] has no record"):
        ZMeanPredictor().fit(zoo, pairs)
