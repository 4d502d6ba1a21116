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
        src, models = pd.factorize(train_pairs["model"].to_numpy())
        dst, datasets = pd.factorize(train_pairs["dataset"].to_numpy())
        self.mu_, model_effect, dataset_effect = additive_effects(
            src, dst, acc, len(models), len(datasets), num_iters=self.num_iters)
        self.model_effect_ = pd.Series(model_effect, index=pd.Index(models, name="model"))
        self.dataset_effect_ = pd.Series(dataset_effect, index=pd.Index(datasets, name="dataset"))
        return self

    def predict(self, pairs: pd.DataFrame, zoo: Zoo | None = None) -> np.ndarray:
        """Predictions [P]; `zoo` is accepted for the common interface (metadata is unused)."""
        if not hasattr(self, "mu_"):
            raise NotFittedError("AdditivePredictor is not fitted; call fit(zoo, train_pairs)")
        m = self.model_effect_.reindex(pairs["model"].to_numpy()).fillna(0.0).to_numpy()
        d = self.dataset_effect_.reindex(pairs["dataset"].to_numpy()).fillna(0.0).to_numpy()
        return self.mu_ + m + d                                           # [P]


def additive_effects(src: np.ndarray, dst: np.ndarray, acc: np.ndarray, num_models: int,
                     num_datasets: int, *, num_iters: int = 20
                     ) -> tuple[float, np.ndarray, np.ndarray]:
    """mu, model effects and dataset effects of acc ≈ mu + model[src] + dataset[dst].

    mu is the mean accuracy; the effects are fitted by alternating least squares (each sweep:
    every model's effect is the mean of its residual given the dataset effects, then the same
    for datasets), starting from zero dataset effects. A node without pairs has effect 0. The
    one implementation of the additive model: `AdditivePredictor` and the gnn's baseline
    (`tpred.models.gnn.baseline`) both call it.

    Shapes: src, dst, acc [P] (node numbers and accuracies) -> float, [num_models],
        [num_datasets].
    """
    deg_m = np.maximum(np.bincount(src, minlength=num_models), 1)
    deg_d = np.maximum(np.bincount(dst, minlength=num_datasets), 1)
    mu = float(acc.mean())
    model, dataset = np.zeros(num_models), np.zeros(num_datasets)
    for _ in range(num_iters):
        model = np.bincount(src, acc - mu - dataset[dst], num_models) / deg_m
        dataset = np.bincount(dst, acc - mu - model[src], num_datasets) / deg_d
    return mu, model, dataset


@register("additive")
def _make_additive(cfg) -> AdditivePredictor:
    return AdditivePredictor()
