"""`additive`: global mean + model effect + dataset effect."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tpred.data.zoo import Zoo
from tpred.errors import NotFittedError
from tpred.models.base import register


class AdditivePredictor:
    """mu + model effect + dataset effect, fitted by alternating least squares on train pairs.

    An id absent from the training pairs has effect 0 (cold start: the prediction is the other
    side's effect plus mu). On DomainNet-270 this matches the published GNN; every other method
    is judged against it.

    Args:
        num_iters: alternating least-squares sweeps (converges in a few for dense tables).
    """

    def __init__(self, *, num_iters: int = 20) -> None:
        self.num_iters = num_iters

    def fit(self, zoo: Zoo, train_pairs: pd.DataFrame) -> AdditivePredictor:
        acc = zoo.accuracy(train_pairs)                                   # [P]
        model = train_pairs["model"].to_numpy()
        dataset = train_pairs["dataset"].to_numpy()
        self.mu_ = float(acc.mean())
        self.dataset_effect_ = pd.Series(0.0, index=pd.unique(dataset))
        self.model_effect_ = pd.Series(0.0, index=pd.unique(model))
        for _ in range(self.num_iters):
            resid = acc - self.mu_ - self.dataset_effect_[dataset].to_numpy()
            self.model_effect_ = pd.Series(resid).groupby(model).mean()
            resid = acc - self.mu_ - self.model_effect_[model].to_numpy()
            self.dataset_effect_ = pd.Series(resid).groupby(dataset).mean()
        return self

    def predict(self, pairs: pd.DataFrame, zoo: Zoo | None = None) -> np.ndarray:
        """Predictions [P]; `zoo` is accepted for the common interface (metadata is unused)."""
        if not hasattr(self, "mu_"):
            raise NotFittedError("AdditivePredictor is not fitted; call fit(zoo, train_pairs)")
        m = self.model_effect_.reindex(pairs["model"].to_numpy()).fillna(0.0).to_numpy()
        d = self.dataset_effect_.reindex(pairs["dataset"].to_numpy()).fillna(0.0).to_numpy()
        return self.mu_ + m + d                                           # [P]


@register("additive")
def _make_additive(cfg) -> AdditivePredictor:
    return AdditivePredictor()
