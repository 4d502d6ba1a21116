"""`score:<metric>`: a raw transferability score as the prediction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tpred.config import TrainConfig
from tpred.data.zoo import Zoo
from tpred.errors import NotFittedError
from tpred.models import make_predictor
from tpred.models.score_only import ScorePredictor


@pytest.fixture
def zoo() -> Zoo:
    """2 models x 2 datasets; metric `logme` for 3 pairs, `leep` for 1."""
    records = pd.DataFrame({"model": ["m0", "m1", "m0"], "dataset": ["d0", "d0", "d1"],
                            "accuracy": [0.5, 0.7, 0.6]})
    scores = pd.DataFrame({"model": ["m0", "m1", "m0", "m0"], "dataset": ["d0", "d0", "d1", "d0"],
                           "metric": ["logme", "logme", "logme", "leep"],
                           "value": [-1.5, 2.0, 0.25, -3.0]})
    return Zoo.from_frames(None, None, records, scores)


def test_score_predictor_returns_the_raw_score(zoo):
    pairs = pd.DataFrame({"model": ["m1", "m0", "m0"], "dataset": ["d0", "d1", "d0"]})
    pred = make_predictor("score:logme", TrainConfig()).fit(zoo, zoo.known_pairs())
    assert isinstance(pred, ScorePredictor)
    np.testing.assert_array_equal(pred.predict(pairs), [2.0, 0.25, -1.5])


def test_score_predictor_reads_a_new_zoo(zoo):
    pred = ScorePredictor("logme").fit(zoo, zoo.known_pairs())
    new = Zoo.from_frames(None, None, pd.DataFrame({"model": ["m9"], "dataset": ["d9"],
                                                    "accuracy": [0.1]}),
                          pd.DataFrame({"model": ["m9"], "dataset": ["d9"], "metric": ["logme"],
                                        "value": [4.0]}))
    np.testing.assert_array_equal(pred.predict(new.known_pairs(), zoo=new), [4.0])


def test_score_predictor_predicts_nan_for_a_pair_without_the_score(zoo):
    # known pairs (m0, d0), (m1, d0), (m0, d1); only (m0, d0) has a leep score
    pred = ScorePredictor("leep").fit(zoo, zoo.known_pairs())
    np.testing.assert_array_equal(pred.predict(zoo.known_pairs()), [-3.0, np.nan, np.nan])


def test_score_predictor_fit_rejects_an_unknown_metric(zoo):
    with pytest.raises(ValueError, match=r"unknown score metric 'hscore'.*\['leep', 'logme'\]"):
        ScorePredictor("hscore").fit(zoo, zoo.known_pairs())


def test_score_predictor_predict_rejects_a_zoo_without_the_metric(zoo):
    pred = ScorePredictor("leep").fit(zoo, zoo.known_pairs())
    bare = Zoo.from_records(zoo.records)
    with pytest.raises(ValueError, match=r"ScorePredictor.predict: unknown score metric 'leep'"):
        pred.predict(zoo.known_pairs(), zoo=bare)


def test_score_predictor_predict_before_fit_raises(zoo):
    with pytest.raises(NotFittedError, match="ScorePredictor is not fitted"):
        ScorePredictor("logme").predict(zoo.known_pairs())
