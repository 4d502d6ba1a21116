"""`knn`: additive baseline + similarity-weighted residuals of neighbouring nodes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tpred.config import NodeFeatureConfig
from tpred.data.zoo import Zoo
from tpred.errors import NotFittedError
from tpred.models.additive import AdditivePredictor
from tpred.models.knn import KNNPredictor

FEATURES = NodeFeatureConfig(numeric=("f1", "f2"))
#: dataset features; d2 is a copy of d0, no other row is parallel to d0 once centred
DATASET_F = {"d0": (1.0, 0.0), "d1": (0.0, 1.0), "d2": (1.0, 0.0), "d3": (-1.0, 0.5),
             "d4": (0.3, -1.0), "d5": (-0.5, -0.5)}
MODEL_F = {"m0": (0.0, 0.0), "m1": (2.0, 1.0), "m2": (-1.0, 0.5), "m3": (0.5, -2.0)}


def _frame(features: dict, id_col: str) -> pd.DataFrame:
    return pd.DataFrame([(k, *v) for k, v in features.items()], columns=[id_col, "f1", "f2"])


def _zoo(models: dict = MODEL_F, datasets: dict = DATASET_F, seed: int = 0) -> Zoo:
    """A random (non-additive) accuracy table over the given nodes."""
    rng = np.random.default_rng(seed)
    records = pd.DataFrame([(m, d, rng.uniform(0.2, 0.9)) for m in models for d in datasets],
                           columns=["model", "dataset", "accuracy"])
    return Zoo.from_frames(_frame(models, "model"), _frame(datasets, "dataset"), records)


def _split(zoo: Zoo, col: str, held_out: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    pairs = zoo.known_pairs()
    return pairs[pairs[col] != held_out], pairs[pairs[col] == held_out]


def test_knn_predicts_a_copy_of_a_dataset_with_its_accuracies():
    zoo = _zoo()
    train, test = _split(zoo, "dataset", "d2")                    # d2 is a cold dataset
    knn = KNNPredictor(n_neighbors=1, dataset_features=FEATURES).fit(zoo, train)
    d0 = test.assign(dataset="d0")
    np.testing.assert_allclose(knn.predict(test), zoo.accuracy(d0), atol=1e-12)


def test_knn_new_model_falls_back_to_similar_models_on_the_same_dataset():
    zoo = _zoo()
    knn = KNNPredictor(n_neighbors=1, model_features=FEATURES).fit(zoo, zoo.known_pairs())
    # a model absent from the fitted zoo, described by a new zoo, with m1's features
    new_zoo = _zoo({**MODEL_F, "m_new": MODEL_F["m1"]})
    pairs = pd.DataFrame({"model": "m_new", "dataset": list(DATASET_F)})
    np.testing.assert_allclose(knn.predict(pairs, zoo=new_zoo),
                               zoo.accuracy(pairs.assign(model="m1")), atol=1e-12)


def test_knn_weights_neighbours_by_similarity():
    zoo = _zoo()
    train, test = _split(zoo, "dataset", "d2")
    knn = KNNPredictor(n_neighbors=2, dataset_features=FEATURES).fit(zoo, train)
    sim = knn._similarity(zoo, "dataset", np.array(["d2"])).block(np.array([0]))[0]   # [D]
    top = np.argsort(-sim)[:2]
    weight = np.maximum(sim[top], 0)
    assert sim[top[0]] == pytest.approx(1.0) and knn.dataset_ids_[top[0]] == "d0"
    expected = [sum(w * zoo.accuracy(pd.DataFrame({"model": [m], "dataset":
                                                   [knn.dataset_ids_[j]]}))[0]
                    for w, j in zip(weight, top, strict=True)) / weight.sum()
                for m in test["model"]]
    np.testing.assert_allclose(knn.predict(test), expected, atol=1e-12)


def test_knn_finds_neighbours_by_score_vectors_without_metadata():
    zoo = _zoo(seed=1)
    rng = np.random.default_rng(1)
    values = {d: rng.normal(size=len(MODEL_F)) for d in DATASET_F}
    values["d2"] = values["d0"] * 3 + 1  # same ranking of models: identical z-scores
    scores = pd.DataFrame([(m, d, "s", values[d][i]) for d in DATASET_F
                           for i, m in enumerate(MODEL_F)],
                          columns=["model", "dataset", "metric", "value"])
    zoo = Zoo.from_frames(None, None, zoo.records, scores)
    train, test = _split(zoo, "dataset", "d2")
    knn = KNNPredictor(n_neighbors=1).fit(zoo, train)
    np.testing.assert_allclose(knn.predict(test), zoo.accuracy(test.assign(dataset="d0")),
                               atol=1e-12)


def test_knn_without_features_or_scores_is_additive():
    zoo = Zoo.from_records(_zoo().records)
    pairs = zoo.known_pairs()
    train, test = pairs.iloc[::2], pairs.iloc[1::2]
    np.testing.assert_allclose(KNNPredictor().fit(zoo, train).predict(test),
                               AdditivePredictor().fit(zoo, train).predict(test), atol=1e-12)


def test_knn_new_model_on_a_new_dataset_uses_neighbour_effects_only():
    zoo = _zoo()
    pairs = zoo.known_pairs()
    train = pairs[(pairs["model"] != "m3") & (pairs["dataset"] != "d2")]
    knn = KNNPredictor(n_neighbors=1, model_features=FEATURES,
                       dataset_features=FEATURES).fit(zoo, train)
    add = knn.additive_
    sim = knn._similarity(zoo, "model", np.array(["m3"])).block(np.array([0]))[0]   # [M]
    nearest_model = knn.model_ids_[np.argmax(sim)]
    expected = add.mu_ + add.model_effect_[nearest_model] + add.dataset_effect_["d0"]
    pred = knn.predict(pd.DataFrame({"model": ["m3"], "dataset": ["d2"]}))
    np.testing.assert_allclose(pred, [expected], atol=1e-12)


def test_knn_rejects_a_bad_neighbour_count():
    zoo = _zoo()
    with pytest.raises(ValueError, match="n_neighbors must be >= 1, got 0"):
        KNNPredictor(n_neighbors=0).fit(zoo, zoo.known_pairs())


def test_knn_predict_before_fit_raises():
    with pytest.raises(NotFittedError, match="KNNPredictor is not fitted"):
        KNNPredictor().predict(pd.DataFrame({"model": ["m0"], "dataset": ["d0"]}))


def test_knn_predict_rejects_ids_the_zoo_does_not_describe():
    zoo = _zoo()
    knn = KNNPredictor(dataset_features=FEATURES).fit(zoo, zoo.known_pairs())
    with pytest.raises(ValueError, match="dataset 'd9' is not in the zoo's datasets table"):
        knn.predict(pd.DataFrame({"model": ["m0"], "dataset": ["d9"]}))


def test_knn_fit_rejects_an_unknown_score_metric():
    zoo = _zoo()
    with pytest.raises(ValueError, match=r"unknown score metric\(s\) \['logme'\]"):
        KNNPredictor(score_metrics=("logme",)).fit(zoo, zoo.known_pairs())


def test_level_spread_is_the_weighted_std_of_the_neighbours_effects_by_hand():
    # one feature: once centred on the training datasets (mean 0 here), a dataset's cosine to
    # another is +1 on the same side of 0 and -1 (weight 0) on the other
    one = NodeFeatureConfig(numeric=("f1",))
    values = {"d0": 1.0, "d1": 2.0, "d2": 3.0, "d3": -6.0, "new": 5.0}
    datasets = pd.DataFrame({"dataset": list(values), "f1": list(values.values())})
    rng = np.random.default_rng(1)
    records = pd.DataFrame([(m, d, rng.uniform(0.2, 0.9)) for m in ("m0", "m1", "m2")
                            for d in ("d0", "d1", "d2", "d3")],
                           columns=["model", "dataset", "accuracy"])
    zoo = Zoo.from_frames(None, datasets, records)
    knn = KNNPredictor(n_neighbors=5, dataset_features=one).fit(zoo, zoo.known_pairs())
    effect = AdditivePredictor().fit(zoo, zoo.known_pairs()).dataset_effect_
    spread = knn.level_spread(["new", "d0", "d3"])
    # new: its neighbours d0, d1, d2 weigh 1 each, d3 weighs 0
    assert spread[0] == pytest.approx(np.std(effect[["d0", "d1", "d2"]]), abs=1e-12)
    # d0: itself excluded, d1 and d2 weigh 1
    assert spread[1] == pytest.approx(np.std(effect[["d1", "d2"]]), abs=1e-12)
    # d3: alone on its side, so no neighbour weighs more than 0: the std of every effect
    assert spread[2] == pytest.approx(np.std(effect), abs=1e-12)
    # k = 1: one neighbour, no spread
    np.testing.assert_allclose(knn.level_spread(["new", "d0"], k=1), 0.0, atol=1e-12)
