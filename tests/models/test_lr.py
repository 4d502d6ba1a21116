"""`lr`: ridge on [model features ‖ dataset features ‖ scores]."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tpred.config import NodeFeatureConfig
from tpred.data.zoo import Zoo
from tpred.errors import NotFittedError
from tpred.models.additive import AdditivePredictor
from tpred.models.lr import ALPHAS, LinearPredictor
from tpred.testing import TOY_DATASET_FEATURES, TOY_MODEL_FEATURES, HashEncoder, toy_zoo

MODEL_Q = NodeFeatureConfig(numeric=("q",))
DATASET_E = NodeFeatureConfig(numeric=("e",))


def _linear_zoo(extra_model: bool = False) -> Zoo:
    """6 models x 8 datasets; accuracy = 0.3 + 0.1 q_m + 0.05 e_d exactly (q, e metadata)."""
    q = {f"m{i}": v for i, v in enumerate([0.0, 1.0, 2.5, 0.5, 3.0, 1.5])}
    e = {f"d{j}": v for j, v in enumerate([0.0, 2.0, 1.0, 4.0, 3.0, 0.5, 2.5, 5.0])}
    if extra_model:
        q["m_new"] = 2.0
    models = pd.DataFrame({"model": list(q), "q": list(q.values())})
    datasets = pd.DataFrame({"dataset": list(e), "e": list(e.values())})
    records = pd.DataFrame([(m, d, 0.3 + 0.1 * qm + 0.05 * ed)
                            for m, qm in q.items() for d, ed in e.items()],
                           columns=["model", "dataset", "accuracy"])
    return Zoo.from_frames(models, datasets, records)


def test_lr_predicts_new_datasets_and_new_models_when_features_carry_the_signal():
    zoo = _linear_zoo()
    pairs = zoo.known_pairs()
    train = pairs[~pairs["dataset"].isin(["d6", "d7"])]           # d6, d7: cold datasets
    lr = LinearPredictor(model_features=MODEL_Q, dataset_features=DATASET_E).fit(zoo, train)
    test = pairs[pairs["dataset"].isin(["d6", "d7"])]
    np.testing.assert_allclose(lr.predict(test), zoo.accuracy(test), atol=2e-3)
    # a model unknown to the fitted zoo, described by a new zoo
    new_zoo = _linear_zoo(extra_model=True)
    new = pd.DataFrame({"model": ["m_new"] * 3, "dataset": ["d0", "d3", "d7"]})
    np.testing.assert_allclose(lr.predict(new, zoo=new_zoo), new_zoo.accuracy(new), atol=2e-3)
    additive = AdditivePredictor().fit(zoo, train).predict(test)
    assert np.abs(additive - zoo.accuracy(test)).max() > 0.05  # the features are what helps


def test_lr_on_a_metadata_free_zoo_is_a_ridge_additive_model():
    rows = [(f"m{i}", f"d{j}", 0.5 + 0.1 * i - 0.05 * j)
            for i in range(3) for j in range(4) if (i, j) not in {(0, 3), (2, 0)}]
    zoo = Zoo.from_records(pd.DataFrame(rows, columns=["model", "dataset", "accuracy"]))
    lr = LinearPredictor().fit(zoo, zoo.known_pairs())
    assert lr.n_features_in_ == 3 + 4  # one-hot of the training ids, no scores
    held_out = pd.DataFrame({"model": ["m0", "m2"], "dataset": ["d3", "d0"]})
    np.testing.assert_allclose(lr.predict(held_out), [0.35, 0.70], atol=5e-3)


def _scored_zoo() -> Zoo:
    """2 models x 3 datasets; metric s: d0 (1, 3), d1 constant, d2 only for m0."""
    records = pd.DataFrame({"model": ["m0", "m1"] * 3,
                            "dataset": ["d0", "d0", "d1", "d1", "d2", "d2"],
                            "accuracy": [0.4, 0.8, 0.5, 0.5, 0.6, 0.7]})
    scores = pd.DataFrame({"model": ["m0", "m1", "m0", "m1", "m0"],
                           "dataset": ["d0", "d0", "d1", "d1", "d2"], "metric": "s",
                           "value": [1.0, 3.0, 7.0, 7.0, 2.0]})
    return Zoo.from_frames(None, None, records, scores)


def test_lr_design_has_zscored_scores_and_missing_flags():
    zoo = _scored_zoo()
    lr = LinearPredictor().fit(zoo, zoo.known_pairs())
    design = lr._design(zoo, zoo.known_pairs())                   # [6, 2 + 3 + 1 + 1]
    assert design.shape == (6, 7) and lr.n_features_in_ == 7
    # z over the models of each dataset; constant group -> 0; missing -> 0 with flag 1
    np.testing.assert_allclose(design[:, 5], [-1, 1, 0, 0, 0, 0])
    np.testing.assert_allclose(design[:, 6], [0, 0, 0, 0, 0, 1])
    assert np.isfinite(lr.predict(zoo.known_pairs())).all()


def test_lr_uses_a_score_that_ranks_models_within_datasets():
    rng = np.random.default_rng(0)
    quality = rng.normal(0, 1, (10, 12))                          # [M, D] interaction only
    acc = 0.6 + 0.1 * np.tanh(quality)
    grid = [(f"m{i}", f"d{j}") for i in range(10) for j in range(12)]
    records = pd.DataFrame([(m, d, acc[i, j]) for (m, d), (i, j) in
                            zip(grid, np.ndindex(10, 12), strict=True)],
                           columns=["model", "dataset", "accuracy"])
    scores = pd.DataFrame([(m, d, "s", 5 * quality[i, j] + j) for (m, d), (i, j) in
                           zip(grid, np.ndindex(10, 12), strict=True)],
                          columns=["model", "dataset", "metric", "value"])
    zoo = Zoo.from_frames(None, None, records, scores)
    pairs = zoo.known_pairs()
    train, test = pairs[pairs["dataset"] != "d11"], pairs[pairs["dataset"] == "d11"]
    pred = LinearPredictor().fit(zoo, train).predict(test)
    truth = zoo.accuracy(test)
    additive = AdditivePredictor().fit(zoo, train).predict(test)
    assert np.corrcoef(pred, truth)[0, 1] > 0.9
    assert abs(np.corrcoef(additive, truth)[0, 1]) < 0.5          # no signal without the score


def test_lr_fit_in_the_row_space_equals_a_plain_ridge_on_the_full_design():
    zoo = toy_zoo(num_datasets=12)
    pairs = zoo.known_pairs()
    train, test = pairs[pairs["dataset"] != "d3"], pairs[pairs["dataset"] == "d3"]
    lr = LinearPredictor(model_features=TOY_MODEL_FEATURES, dataset_features=TOY_DATASET_FEATURES,
                         encoder=HashEncoder(dim=32)).fit(zoo, train)
    assert lr.n_features_in_ > lr.projection_.shape[1]  # 2 x 32 text dims on 11 datasets
    plain = make_pipeline(StandardScaler(), RidgeCV(alphas=list(ALPHAS)))
    plain.fit(lr._design(zoo, train), zoo.accuracy(train))
    assert lr.alpha_ == plain[-1].alpha_
    np.testing.assert_allclose(lr.predict(test), plain.predict(lr._design(zoo, test)), atol=1e-8)


def test_lr_predict_before_fit_raises():
    with pytest.raises(NotFittedError, match="LinearPredictor is not fitted"):
        LinearPredictor().predict(pd.DataFrame({"model": ["m0"], "dataset": ["d0"]}))


def test_lr_predict_rejects_ids_the_zoo_does_not_describe():
    zoo = _linear_zoo()
    lr = LinearPredictor(model_features=MODEL_Q).fit(zoo, zoo.known_pairs())
    with pytest.raises(ValueError, match="model 'm_new' is not in the zoo's models table"):
        lr.predict(pd.DataFrame({"model": ["m_new"], "dataset": ["d0"]}))


def test_lr_fit_rejects_an_unknown_score_metric():
    zoo = _scored_zoo()
    with pytest.raises(ValueError, match=r"unknown score metric\(s\) \['logme'\].*\['s'\]"):
        LinearPredictor(score_metrics=("logme",)).fit(zoo, zoo.known_pairs())
