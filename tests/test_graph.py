"""tpred.graph: node and edge counts, only training records as edges, score standardisation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tpred.data.zoo import Zoo
from tpred.graph import (
    DATASET,
    MODEL,
    RECORD,
    REV_RECORD,
    REV_SCORE,
    SCORE,
    build_graph,
    score_features,
    standardize_scores,
)
from tpred.testing import toy_zoo


def _graph(zoo: Zoo, train: pd.DataFrame, **kw):
    model_x = np.arange(zoo.num_models * 2, dtype=float).reshape(-1, 2)
    dataset_x = np.zeros((zoo.num_datasets, 0))
    return build_graph(zoo, train, model_x, dataset_x, model_index=zoo.model_ids,
                       dataset_index=zoo.dataset_ids, **kw)


@pytest.fixture
def tiny():
    """3 models x 2 datasets; d0 fully scored (1, 2, 3); d1 scored for m0, m1 only (5, 5)."""
    records = pd.DataFrame({"model": ["m0", "m1", "m2", "m0", "m1", "m2"],
                            "dataset": ["d0", "d0", "d0", "d1", "d1", "d1"],
                            "accuracy": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]})
    scores = pd.DataFrame({"model": ["m0", "m1", "m2", "m0", "m1", "m0"],
                           "dataset": ["d0", "d0", "d0", "d1", "d1", "d0"],
                           "metric": ["a", "a", "a", "a", "a", "b"],
                           "value": [1.0, 2.0, 3.0, 5.0, 5.0, 7.0]})
    return Zoo.from_frames(None, None, records, scores)


def test_node_and_edge_counts_on_toy_zoo():
    zoo = toy_zoo()                                   # 8 x 24, every pair known and scored
    train = zoo.known_pairs().iloc[::3].reset_index(drop=True)
    data = _graph(zoo, train)
    assert data[MODEL].num_nodes == 8 and data[DATASET].num_nodes == 24
    assert data[MODEL].x.shape == (8, 2) and data[DATASET].x.shape == (24, 0)
    assert data[RECORD].edge_index.shape == (2, len(train))
    assert data[REV_RECORD].edge_index.shape == (2, len(train))
    assert data[SCORE].edge_index.shape == (2, 8 * 24)       # scores exist for every pair
    assert data[SCORE].edge_attr.shape == (8 * 24, 4)        # 2 metrics + 2 indicators
    assert data[REV_SCORE].edge_index.shape == (2, 8 * 24)


def test_only_training_records_are_edges_with_their_accuracy():
    zoo = toy_zoo(seed=3)
    known = zoo.known_pairs()
    train = known.sample(frac=0.6, random_state=0).reset_index(drop=True)
    data = _graph(zoo, train)
    src, dst = data[RECORD].edge_index.numpy()
    edges = set(zip(zoo.model_ids[src], zoo.dataset_ids[dst], strict=True))
    assert edges == set(zip(train["model"], train["dataset"], strict=True))
    np.testing.assert_array_equal(data[RECORD].edge_label.numpy(),
                                  zoo.accuracy(train).astype(np.float32))
    np.testing.assert_array_equal(data[RECORD].edge_attr.numpy()[:, 0],
                                  data[RECORD].edge_label.numpy())


def test_reverse_edges_mirror_forward_edges_without_edge_label():
    zoo = toy_zoo()
    data = _graph(zoo, zoo.known_pairs().iloc[:50])
    for fwd, rev in ((RECORD, REV_RECORD), (SCORE, REV_SCORE)):
        np.testing.assert_array_equal(data[rev].edge_index.numpy(),
                                      data[fwd].edge_index.flip(0).numpy())
        np.testing.assert_array_equal(data[rev].edge_attr.numpy(), data[fwd].edge_attr.numpy())
    assert "edge_label" not in data[REV_RECORD]
    assert "edge_label" in data[RECORD]


def test_standardize_scores_by_hand(tiny):
    pairs = pd.DataFrame({"model": ["m0", "m1", "m2", "m0", "m2"],
                          "dataset": ["d0", "d0", "d0", "d1", "d1"]})
    z = standardize_scores(tiny, pairs, ["a", "b", "c"])
    s = np.sqrt(2 / 3)                     # population std of (1, 2, 3)
    expected = np.array([[-1 / s, 0.0, np.nan],     # b on d0: one model -> constant -> 0
                         [0.0, np.nan, np.nan],
                         [1 / s, np.nan, np.nan],
                         [0.0, np.nan, np.nan],     # a on d1: (5, 5) constant -> 0
                         [np.nan, np.nan, np.nan]])  # m2 has no score on d1
    np.testing.assert_allclose(z, expected)
    np.testing.assert_allclose(score_features(z[:2, :2]),
                               [[-1 / s, 0, 0, 0], [0, 0, 0, 1]], rtol=1e-6)


def test_score_edges_carry_zscores_and_missing_indicators(tiny):
    data = build_graph(tiny, tiny.known_pairs().iloc[:2], np.zeros((3, 1)), np.zeros((2, 1)),
                       model_index=tiny.model_ids, dataset_index=tiny.dataset_ids,
                       score_metrics=["a", "b"])
    src, dst = data[SCORE].edge_index.numpy()
    got = {(tiny.model_ids[i], tiny.dataset_ids[j]): row.tolist()
           for i, j, row in zip(src, dst, data[SCORE].edge_attr.numpy(), strict=True)}
    s = np.sqrt(2 / 3)
    assert set(got) == {("m0", "d0"), ("m1", "d0"), ("m2", "d0"), ("m0", "d1"), ("m1", "d1")}
    np.testing.assert_allclose(got[("m0", "d0")], [-1 / s, 0, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(got[("m2", "d0")], [1 / s, 0, 0, 1], rtol=1e-6)
    np.testing.assert_allclose(got[("m1", "d1")], [0, 0, 0, 1])


def test_no_metrics_means_no_score_edges(tiny):
    data = _graph(tiny, tiny.known_pairs(), score_metrics=[])
    assert SCORE not in data.edge_types and REV_SCORE not in data.edge_types
    assert _graph(toy_zoo(with_scores=False), toy_zoo().known_pairs()[:5]).edge_types == [
        RECORD, REV_RECORD]


def test_build_graph_rejects_bad_inputs(tiny):
    train = tiny.known_pairs()
    ids = dict(model_index=tiny.model_ids, dataset_index=tiny.dataset_ids)
    mx, dx = np.zeros((3, 1)), np.zeros((2, 1))
    with pytest.raises(ValueError, match=r"model_x must be 2-D with one row per id"):
        build_graph(tiny, train, np.zeros((2, 1)), dx, **ids)
    with pytest.raises(ValueError, match=r"dataset_index must be unique; 'd0'"):
        build_graph(tiny, train, mx, np.zeros((3, 1)), model_index=tiny.model_ids,
                    dataset_index=pd.Index(["d0", "d1", "d0"]))
    with pytest.raises(ValueError, match=r"unknown score metric\(s\) \['zz'\]"):
        build_graph(tiny, train, mx, dx, score_metrics=["zz"], **ids)
    with pytest.raises(ValueError, match=r"build_graph\(train_pairs\), column 'dataset': "
                                         r"dataset 'd1' is not in dataset_index"):
        build_graph(tiny, train, mx, dx[:1], model_index=tiny.model_ids,
                    dataset_index=pd.Index(["d0"]))
    with pytest.raises(ValueError, match=r"duplicate pair \['m0', 'd0'\]"):
        build_graph(tiny, pd.concat([train, train.iloc[:1]]), mx, dx, **ids)
