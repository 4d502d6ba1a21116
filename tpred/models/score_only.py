"""`score:<metric>`: one raw transferability score as the prediction (ranking only)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tpred.data.zoo import Zoo
from tpred.errors import NotFittedError


class ScorePredictor:
    """The raw score `metric` of each pair as its prediction.

    A score ranks models for a dataset but is not on the accuracy scale (LogME is a log
    evidence, LEEP a log likelihood), so only the per-dataset ranking metrics of this predictor
    mean something; its RMSE/MAE do not (the evaluation skips them for `score:*`). A pair
    without the score is predicted as NaN: the evaluation ranks only the pairs that have it
    (its `pairs` column says how many). Nothing is
    learned: `fit` checks the metric, and no accuracy is read. Built by
    `make_predictor("score:<metric>", cfg)`; not in `PREDICTORS`, as the name carries the metric.

    Args:
        metric: a metric name of the zoo's scores table.
    """

    def __init__(self, metric: str) -> None:
        self.metric = metric

    def fit(self, zoo: Zoo, train_pairs: pd.DataFrame) -> ScorePredictor:
        """Check that the zoo has scores `metric`.

        Raises:
            ValueError: the zoo has no scores of that metric (the message lists those it has).
        """
        _check_metric(zoo, self.metric, "ScorePredictor.fit")
        self.zoo_ = zoo
        return self

    def predict(self, pairs: pd.DataFrame, zoo: Zoo | None = None) -> np.ndarray:
        """The scores [P] of `pairs` in `zoo` (default: the fitted one); NaN where a pair lacks
        the score.

        Raises:
            NotFittedError: before `fit`.
            ValueError: `zoo` has no such metric.
        """
        if not hasattr(self, "zoo_"):
            raise NotFittedError("ScorePredictor is not fitted; call fit(zoo, train_pairs)")
        zoo = self.zoo_ if zoo is None else zoo
        _check_metric(zoo, self.metric, "ScorePredictor.predict")
        return zoo.score_matrix(pairs, [self.metric])[:, 0]               # [P], NaN: no score


def _check_metric(zoo: Zoo, metric: str, caller: str) -> None:
    if metric not in zoo.score_metrics:
        raise ValueError(f"{caller}: unknown score metric {metric!r}; the zoo's scores table "
                         f"has {zoo.score_metrics}")
