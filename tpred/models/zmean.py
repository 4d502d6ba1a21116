"""`zmean`: each model's mean of its per-dataset z-scored accuracies (the ranking by hand)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tpred.data.zoo import Zoo
from tpred.errors import NotFittedError
from tpred.models.base import register

#: a dataset whose training accuracies have a (population) std below this is constant: its
#: z-scores are undefined and it adds nothing to any model's mean
STD_EPS = 1e-12


class ZMeanPredictor:
    """A model's mean z-score over the training datasets, mapped back to a dataset's scale.

    With mean_d and std_d (ddof=0) the mean and standard deviation of dataset d's training
    accuracies, each training record gets z = (accuracy − mean_d) / std_d (datasets with fewer
    than 2 records or a constant column are skipped), and each model the mean z_m of its
    records' z (0 for a model without any: a cold model is average). This is the ranking a
    careful user computes by hand: it removes each dataset's difficulty and spread before
    averaging, which a per-model mean of raw accuracies does not.

    A pair (m, d) is predicted as level_d + scale_d · z_m, so for every dataset the models are
    ranked by z_m. scale_d is std_d when d has a defined z-score, else the mean std of those
    that do; level_d is the mean over d's training records of accuracy − scale_d · z_m (mean_d
    itself when d's known models are average). A dataset without training records (cold start)
    gets the documented fallback: the mean level and the mean scale over the training datasets.
    There is nothing to tune.
    """

    def fit(self, zoo: Zoo, train_pairs: pd.DataFrame) -> ZMeanPredictor:
        """Fit the model z-means and each training dataset's level and scale.

        Raises:
            ValueError: a training pair without a record.
        """
        acc = zoo.accuracy(train_pairs)                                   # [P]
        src, models = pd.factorize(train_pairs["model"].to_numpy())
        dst, datasets = pd.factorize(train_pairs["dataset"].to_numpy())
        z_model, level, scale = zmean_fit(src, dst, acc, len(models), len(datasets))
        self.z_model_ = pd.Series(z_model, index=pd.Index(models, name="model"))
        self.level_ = pd.Series(level, index=pd.Index(datasets, name="dataset"))
        self.scale_ = pd.Series(scale, index=pd.Index(datasets, name="dataset"))
        self.fallback_level_, self.fallback_scale_ = float(level.mean()), float(scale.mean())
        return self

    def predict(self, pairs: pd.DataFrame, zoo: Zoo | None = None) -> np.ndarray:
        """level_d + scale_d · z_m [P]; `zoo` is accepted for the common interface (unused)."""
        if not hasattr(self, "z_model_"):
            raise NotFittedError("ZMeanPredictor is not fitted; call fit(zoo, train_pairs)")
        z = self.z_model_.reindex(pairs["model"].to_numpy()).fillna(0.0).to_numpy()
        datasets = pairs["dataset"].to_numpy()
        level = self.level_.reindex(datasets).fillna(self.fallback_level_).to_numpy()
        scale = self.scale_.reindex(datasets).fillna(self.fallback_scale_).to_numpy()
        return level + scale * z                                          # [P]


def zmean_fit(src: np.ndarray, dst: np.ndarray, acc: np.ndarray, num_models: int,
              num_datasets: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Model z-means and dataset levels and scales of `ZMeanPredictor` from pairs by position.

    A dataset without pairs gets level 0 and the mean scale (callers decide its fallback).

    Shapes: src, dst, acc [P] -> z_model [num_models], level, scale [num_datasets].
    """
    count = np.bincount(dst, minlength=num_datasets).astype(np.float64)   # [D]
    mean = np.bincount(dst, acc, num_datasets) / np.maximum(count, 1)
    std = np.sqrt(np.bincount(dst, (acc - mean[dst]) ** 2, num_datasets) / np.maximum(count, 1))
    defined = (count >= 2) & (std > STD_EPS)                              # [D]
    ok = defined[dst]                                                     # [P]
    z = np.where(ok, (acc - mean[dst]) / np.where(defined, std, 1.0)[dst], 0.0)
    per_model = np.bincount(src, ok.astype(np.float64), num_models)
    z_model = np.bincount(src, z, num_models) / np.maximum(per_model, 1)  # [M]
    typical = float(std[defined].mean()) if defined.any() else 0.0
    scale = np.where(defined, std, typical)                               # [D]
    level = np.bincount(dst, acc - scale[dst] * z_model[src], num_datasets) / np.maximum(count, 1)
    return z_model, level, scale


@register("zmean")
def _make_zmean(cfg) -> ZMeanPredictor:
    return ZMeanPredictor()
