"""`lr`: ridge regression of accuracy on [model features ‖ dataset features ‖ scores]."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from tpred.config import NodeFeatureConfig
from tpred.data.zoo import Zoo
from tpred.errors import NotFittedError
from tpred.models._inputs import (
    NO_FEATURES,
    NodeFeatures,
    check_ids_in_zoo,
    dataset_zscores,
    encoder_for,
    resolve_metrics,
)
from tpred.models.base import register

#: candidate ridge penalties (the design matrix is standardised, so these are unit-free)
ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 13))


class LinearPredictor:
    """Ridge regression on [model features ‖ dataset features ‖ scores ‖ score-missing flags].

    Scores are z-scored per metric over the models of each dataset (`dataset_zscores`); a missing
    score is 0 with a 1 in its indicator column. The design matrix is standardised, and the ridge
    penalty is chosen among `alphas` by RidgeCV's leave-one-out on the training pairs only.

    Features come from `NodeFeaturizer`s fitted on the training nodes, so a model or dataset absent
    from the training pairs, or from the fitted zoo (pass `predict(pairs, zoo=new_zoo)`), goes
    through the same transform. A node type without feature columns (a metadata-free zoo, or an
    empty `NodeFeatureConfig`) is one-hot encoded by training id instead: then `lr` is a ridge
    version of `additive` plus scores, and an unseen id of that type gets the zero row (no effect).

    Args:
        model_features, dataset_features: metadata columns used as node features.
        encoder: text encoder for text columns (a `tpred.text.TextEncoder`); None if there are none.
        score_metrics: metrics used; None takes every metric of the zoo given to `fit`.
        alphas: candidate ridge penalties.
    """

    def __init__(self, *, model_features: NodeFeatureConfig = NO_FEATURES,
                 dataset_features: NodeFeatureConfig = NO_FEATURES, encoder=None,
                 score_metrics: Sequence[str] | None = None,
                 alphas: Sequence[float] = ALPHAS) -> None:
        self.model_features = model_features
        self.dataset_features = dataset_features
        self.encoder = encoder
        self.score_metrics = score_metrics
        self.alphas = alphas

    def fit(self, zoo: Zoo, train_pairs: pd.DataFrame) -> LinearPredictor:
        """Fit featurizers on the training nodes and the ridge on the training pairs."""
        acc = zoo.accuracy(train_pairs)                                   # [P]
        self.score_metrics_ = resolve_metrics(zoo, self.score_metrics, "LinearPredictor.fit")
        self.model_ids_ = pd.Index(pd.unique(train_pairs["model"].to_numpy()))
        self.dataset_ids_ = pd.Index(pd.unique(train_pairs["dataset"].to_numpy()))
        self.model_inputs_ = NodeFeatures(self.model_features, self.encoder).fit(
            zoo.models, self.model_ids_)
        self.dataset_inputs_ = NodeFeatures(self.dataset_features, self.encoder).fit(
            zoo.datasets, self.dataset_ids_)
        self.zoo_ = zoo
        X = self._design(zoo, train_pairs)                                # [P, F]
        self.regressor_: Pipeline = make_pipeline(StandardScaler(),
                                                  RidgeCV(alphas=list(self.alphas)))
        self.regressor_.fit(X, acc)
        self.alpha_ = float(self.regressor_[-1].alpha_)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, pairs: pd.DataFrame, zoo: Zoo | None = None) -> np.ndarray:
        """Predicted accuracies [P]; `zoo` (default: the fitted one) describes the pairs' nodes.

        Raises:
            NotFittedError: before `fit`.
            ValueError: a pair names an id that `zoo` does not describe.
        """
        if not hasattr(self, "regressor_"):
            raise NotFittedError("LinearPredictor is not fitted; call fit(zoo, train_pairs)")
        zoo = self.zoo_ if zoo is None else zoo
        check_ids_in_zoo(pairs, zoo, "LinearPredictor.predict")
        return self.regressor_.predict(self._design(zoo, pairs))          # [P]

    def _design(self, zoo: Zoo, pairs: pd.DataFrame) -> np.ndarray:
        """[model block ‖ dataset block ‖ z-scores ‖ missing flags] of `pairs`, [P, F]."""
        blocks = []
        for col, inputs, ids, metadata in (
                ("model", self.model_inputs_, self.model_ids_, zoo.models),
                ("dataset", self.dataset_inputs_, self.dataset_ids_, zoo.datasets)):
            uniq, inverse = np.unique(pairs[col].to_numpy(dtype=str), return_inverse=True)
            if inputs.featurizer_ is not None:
                blocks.append(inputs.transform(metadata, uniq)[inverse])  # [P, F_col]
            else:  # no metadata: one-hot of the training ids; an unseen id is the zero row
                pos = ids.get_indexer(uniq)[inverse]                      # [P]
                onehot = np.zeros((len(pairs), len(ids)))                 # [P, N_col]
                onehot[np.flatnonzero(pos >= 0), pos[pos >= 0]] = 1.0
                blocks.append(onehot)
        z = dataset_zscores(zoo, pairs, self.score_metrics_)              # [P, S]
        missing = np.isnan(z)
        blocks += [np.where(missing, 0.0, z), missing.astype(np.float64)]
        return np.hstack(blocks)                                          # [P, F]


@register("lr")
def _make_lr(cfg) -> LinearPredictor:
    return LinearPredictor(model_features=cfg.model_features,
                           dataset_features=cfg.dataset_features, encoder=encoder_for(cfg),
                           score_metrics=cfg.score_metrics)
