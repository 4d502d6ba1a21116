"""Shared inputs of the feature-based baselines: z-scored scores, id checks, node features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tpred.config import NodeFeatureConfig
from tpred.data.zoo import Zoo
from tpred.models._inputs import (
    NodeFeatures,
    check_ids_in_zoo,
    dataset_zscores,
    resolve_metrics,
)


@pytest.fixture
def zoo() -> Zoo:
    """3 models x 2 datasets; metric a: d0 (1, 2, 3), d1 (5, 5) and m2 missing; metric b: one."""
    records = pd.DataFrame({"model": ["m0", "m1", "m2"] * 2, "dataset": ["d0"] * 3 + ["d1"] * 3,
                            "accuracy": 0.5})
    scores = pd.DataFrame({"model": ["m0", "m1", "m2", "m0", "m1", "m2"],
                           "dataset": ["d0", "d0", "d0", "d1", "d1", "d1"],
                           "metric": ["a", "a", "a", "a", "a", "b"],
                           "value": [1.0, 2.0, 3.0, 5.0, 5.0, 9.0]})
    return Zoo.from_frames(None, None, records, scores)


def test_dataset_zscores_standardise_each_dataset_and_metric(zoo):
    z = dataset_zscores(zoo, zoo.known_pairs(), ["a", "b", "absent"])
    s = np.sqrt(2 / 3)  # population std of (1, 2, 3)
    expected = [[-1 / s, np.nan, np.nan], [0, np.nan, np.nan], [1 / s, np.nan, np.nan],
                [0, np.nan, np.nan], [0, np.nan, np.nan], [np.nan, 0, np.nan]]
    np.testing.assert_allclose(z, expected)  # constant group -> 0; missing -> NaN


def test_dataset_zscores_of_unknown_pairs_are_missing(zoo):
    pairs = pd.DataFrame({"model": ["m9"], "dataset": ["d0"]})
    assert np.isnan(dataset_zscores(zoo, pairs, ["a"])).all()


def test_resolve_metrics_defaults_to_every_metric_and_rejects_unknown_ones(zoo):
    assert resolve_metrics(zoo, None, "f") == ["a", "b"]
    with pytest.raises(ValueError, match=r"f: unknown score metric\(s\) \['c'\]; .* \['a', 'b'\]"):
        resolve_metrics(zoo, ["a", "c"], "f")


def test_check_ids_in_zoo_names_the_first_unknown_id(zoo):
    check_ids_in_zoo(zoo.known_pairs(), zoo, "f")
    with pytest.raises(ValueError, match=r"f, column 'model': model 'x' is not in the zoo's "
                                         r"models table \(2 such row"):
        check_ids_in_zoo(pd.DataFrame({"model": ["m0", "x", "x"], "dataset": "d0"}), zoo, "f")


def test_node_features_fit_on_the_given_ids_only():
    meta = pd.DataFrame({"v": [0.0, 2.0, 100.0]}, index=pd.Index(["a", "b", "c"]))
    nodes = NodeFeatures(NodeFeatureConfig(numeric=("v",))).fit(meta, ["a", "b"])
    np.testing.assert_allclose(nodes.transform(meta, ["a", "b", "c"])[:, 0], [-1, 1, 99])
    assert NodeFeatures(NodeFeatureConfig()).fit(meta, ["a"]).transform(meta, ["c"]).shape == (1, 0)
