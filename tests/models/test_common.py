"""One contract for every predictor (scikit-learn's test_common idea), on `toy_zoo()`."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest

from tpred.config import GNNConfig, TextConfig, TrainConfig
from tpred.data.zoo import Zoo
from tpred.errors import NotFittedError
from tpred.models import PREDICTORS, make_predictor
from tpred.testing import TOY_DATASET_FEATURES, TOY_MODEL_FEATURES, toy_zoo

CFG = TrainConfig(model_features=TOY_MODEL_FEATURES, dataset_features=TOY_DATASET_FEATURES,
                  text=TextConfig(encoder="hash", cache_dir=None),
                  gnn=GNNConfig(hidden_channels=8, max_epochs=10, patience=5))
NAMES = sorted(PREDICTORS) + ["score:score_a"]
HELD_OUT = ["d1", "d5", "d9"]  # cold datasets


@pytest.fixture(scope="module")
def zoo() -> Zoo:
    return toy_zoo(known_fraction=0.8)


def _split(zoo: Zoo) -> tuple[pd.DataFrame, pd.DataFrame]:
    pairs = zoo.all_pairs()
    known = pairs.merge(zoo.known_pairs(), how="left", indicator=True)["_merge"] == "both"
    cold = pairs["dataset"].isin(HELD_OUT).to_numpy()
    return pairs[known.to_numpy() & ~cold], pairs[~known.to_numpy() | cold]


def _accepts_zoo(predictor) -> bool:
    return "zoo" in inspect.signature(predictor.predict).parameters


@pytest.fixture(scope="module")
def fitted(zoo) -> dict:
    """name -> predictor fitted on the training split (one fit per predictor per module)."""
    train = _split(zoo)[0]
    return {name: make_predictor(name, CFG).fit(zoo, train) for name in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_predictor_fit_returns_itself(name, zoo):
    predictor = make_predictor(name, CFG)
    assert predictor.fit(zoo, _split(zoo)[0]) is predictor


@pytest.mark.parametrize("name", NAMES)
def test_predictor_predicts_any_pair(name, zoo, fitted):
    for pairs in _split(zoo):  # training pairs; unknown pairs, new datasets included
        pred = fitted[name].predict(pairs)
        assert isinstance(pred, np.ndarray) and pred.shape == (len(pairs),)
        assert pred.dtype.kind == "f" and np.isfinite(pred).all()
    assert fitted[name].predict(zoo.known_pairs().iloc[:0]).shape == (0,)


@pytest.mark.parametrize("name", NAMES)
def test_predictor_is_deterministic_and_reads_no_accuracy_outside_the_training_pairs(
        name, zoo, fitted):
    train, test = _split(zoo)
    blind = Zoo.from_frames(zoo.models, zoo.datasets,
                            zoo.records.merge(train, on=["model", "dataset"]), zoo.scores)
    np.testing.assert_allclose(make_predictor(name, CFG).fit(blind, train).predict(test),
                               fitted[name].predict(test), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_predictor_predicts_nodes_absent_from_the_fitted_zoo(name, fitted):
    predictor = fitted[name]
    if not _accepts_zoo(predictor):
        pytest.skip(f"{name}.predict takes no zoo")
    bigger = toy_zoo(num_models=10, num_datasets=26, seed=1)  # m8, m9, d24, d25 are new
    pairs = bigger.all_pairs()
    pred = predictor.predict(pairs, zoo=bigger)
    assert pred.shape == (len(pairs),) and np.isfinite(pred).all()


@pytest.mark.parametrize("name", NAMES)
def test_predictor_predict_before_fit_raises(name, zoo):
    with pytest.raises(NotFittedError, match="not fitted"):
        make_predictor(name, CFG).predict(zoo.known_pairs())
