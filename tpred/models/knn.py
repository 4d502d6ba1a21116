"""`knn`: the additive baseline corrected by the residuals of the most similar neighbours."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

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
from tpred.models.additive import AdditivePredictor
from tpred.models.base import register
from tpred.models.neighbours import (
    cosine_similarity,
    neighbour_mean,
    neighbour_residuals,
    residual_table,
)


class KNNPredictor:
    """Similarity-weighted neighbours on the residuals of the additive baseline.

    With r(m, d) = accuracy - (mu + b_m + b_d) on training pairs, a pair (m, d) is predicted as

    - model m seen in training: mu + b_m + b̂_d + sum_j w_j r(m, d_j) / sum_j w_j over the k
      training datasets d_j most similar to d among those where m has a record;
    - model m new (symmetric fallback): mu + b̂_m + b_d + the same over the k training models most
      similar to m among those with a record on d (nothing when d has none);

    where b̂ is the node's own effect when it has training records, else the similarity-weighted
    mean effect of its k most similar training nodes, and w_j = max(similarity, 0). For a new
    dataset and a model with records on all its neighbours, this is exactly
    sum_j w_j acc(m, d_j) / sum_j w_j.
    A neighbourhood whose weights are all 0 adds nothing (the additive prediction remains).

    Similarity is the cosine of node features (fitted on training nodes, centred by their mean),
    averaged with the cosine of score vectors when the zoo has scores: a dataset's vector is its
    z-scored scores (`dataset_zscores`) against every training model, a model's its z-scored
    scores on every training dataset (missing scores are 0). With neither features nor scores,
    `knn` is `additive`.

    Args:
        n_neighbors: k.
        model_features, dataset_features: metadata columns used as node features.
        encoder: text encoder for text columns (a `tpred.text.TextEncoder`); None if there are none.
        score_metrics: metrics used; None takes every metric of the zoo given to `fit`.
    """

    def __init__(self, *, n_neighbors: int = 5,
                 model_features: NodeFeatureConfig = NO_FEATURES,
                 dataset_features: NodeFeatureConfig = NO_FEATURES, encoder=None,
                 score_metrics: Sequence[str] | None = None) -> None:
        self.n_neighbors = n_neighbors
        self.model_features = model_features
        self.dataset_features = dataset_features
        self.encoder = encoder
        self.score_metrics = score_metrics

    def fit(self, zoo: Zoo, train_pairs: pd.DataFrame) -> KNNPredictor:
        """Fit the additive part, the featurizers (training nodes only) and the residual table.

        Raises:
            ValueError: `n_neighbors` < 1, or an unknown score metric.
        """
        if self.n_neighbors < 1:
            raise ValueError(f"KNNPredictor: n_neighbors must be >= 1, got {self.n_neighbors}")
        self.score_metrics_ = resolve_metrics(zoo, self.score_metrics, "KNNPredictor.fit")
        self.additive_ = AdditivePredictor().fit(zoo, train_pairs)
        resid = zoo.accuracy(train_pairs) - self.additive_.predict(train_pairs)  # [P]
        rows, self.model_ids_ = pd.factorize(train_pairs["model"].to_numpy())
        cols, self.dataset_ids_ = pd.factorize(train_pairs["dataset"].to_numpy())
        self.model_ids_, self.dataset_ids_ = pd.Index(self.model_ids_), pd.Index(self.dataset_ids_)
        self.residual_ = residual_table(rows, cols, resid, len(self.model_ids_),
                                        len(self.dataset_ids_))           # [M, D] NaN: no record
        self.model_inputs_ = NodeFeatures(self.model_features, self.encoder).fit(
            zoo.models, self.model_ids_)
        self.dataset_inputs_ = NodeFeatures(self.dataset_features, self.encoder).fit(
            zoo.datasets, self.dataset_ids_)
        self.zoo_ = zoo
        self.model_center_ = self.model_inputs_.transform(zoo.models, self.model_ids_).mean(0)
        self.dataset_center_ = self.dataset_inputs_.transform(zoo.datasets,
                                                              self.dataset_ids_).mean(0)
        self.model_vectors_ = self._vectors(zoo, "model", self.model_ids_)      # [M, ...]
        self.dataset_vectors_ = self._vectors(zoo, "dataset", self.dataset_ids_)  # [D, ...]
        return self

    def predict(self, pairs: pd.DataFrame, zoo: Zoo | None = None) -> np.ndarray:
        """Predicted accuracies [P]; `zoo` (default: the fitted one) describes the pairs' nodes.

        Raises:
            NotFittedError: before `fit`.
            ValueError: a pair names an id that `zoo` does not describe.
        """
        if not hasattr(self, "residual_"):
            raise NotFittedError("KNNPredictor is not fitted; call fit(zoo, train_pairs)")
        zoo = self.zoo_ if zoo is None else zoo
        check_ids_in_zoo(pairs, zoo, "KNNPredictor.predict")
        if not len(pairs):  # scikit-learn transformers refuse 0 rows
            return np.zeros(0)
        uniq_m, inv_m = np.unique(pairs["model"].to_numpy(dtype=str), return_inverse=True)
        uniq_d, inv_d = np.unique(pairs["dataset"].to_numpy(dtype=str), return_inverse=True)
        sim_m = self._similarity(zoo, "model", uniq_m)[inv_m]             # [P, M]
        sim_d = self._similarity(zoo, "dataset", uniq_d)[inv_d]           # [P, D]
        pos_m = self.model_ids_.get_indexer(uniq_m)[inv_m]                # [P] -1: new
        pos_d = self.dataset_ids_.get_indexer(uniq_d)[inv_d]              # [P] -1: new

        add = self.additive_
        effect_m = add.model_effect_.reindex(self.model_ids_).to_numpy()  # [M]
        effect_d = add.dataset_effect_.reindex(self.dataset_ids_).to_numpy()  # [D]
        b_m = np.where(pos_m >= 0, effect_m[pos_m],
                       self._neighbour_mean(sim_m, np.broadcast_to(effect_m, sim_m.shape)))
        b_d = np.where(pos_d >= 0, effect_d[pos_d],
                       self._neighbour_mean(sim_d, np.broadcast_to(effect_d, sim_d.shape)))

        # residuals of m on datasets like d; for a new model, on d of models like m
        near = neighbour_residuals(self.residual_, pos_m, np.where(pos_m >= 0, -1, pos_d),
                                   sim_d, sim_m, self.n_neighbors)        # [P, 2]
        interaction = np.where(pos_m >= 0, near[:, 0], near[:, 1])        # [P]
        return add.mu_ + b_m + b_d + interaction                          # [P]

    def _neighbour_mean(self, sim: np.ndarray, values: np.ndarray) -> np.ndarray:
        """`neighbour_mean` over the k = n_neighbors most similar (no shrinkage) [P]."""
        return neighbour_mean(sim, values, self.n_neighbors)

    def _similarity(self, zoo: Zoo, kind: str, ids: np.ndarray) -> np.ndarray:
        """Similarity of nodes `ids` of `zoo` to the training nodes of the same type, [Q, N]."""
        query, ref = self._vectors(zoo, kind, ids), getattr(self, f"{kind}_vectors_")
        sims = [cosine_similarity(q, r) for q, r in zip(query, ref, strict=True) if r.shape[1]]
        if not sims:
            return np.zeros((len(ids), len(ref[0])))
        return np.mean(sims, axis=0)

    def _vectors(self, zoo: Zoo, kind: str, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(centred node features [n, F], score vectors [n, N_other · S]) of nodes `ids`."""
        if kind == "model":
            features = self.model_inputs_.transform(zoo.models, ids) - self.model_center_
            other, other_col = self.dataset_ids_, "dataset"
        else:
            features = self.dataset_inputs_.transform(zoo.datasets, ids) - self.dataset_center_
            other, other_col = self.model_ids_, "model"
        grid = pd.DataFrame({kind: np.repeat(np.asarray(ids, dtype=object), len(other)),
                             other_col: np.tile(other.to_numpy(dtype=object), len(ids))})
        z = dataset_zscores(zoo, grid, self.score_metrics_)               # [n · N_other, S]
        scores = np.nan_to_num(z).reshape(len(ids), -1)                   # [n, N_other · S]
        return features, scores


@register("knn")
def _make_knn(cfg) -> KNNPredictor:
    return KNNPredictor(model_features=cfg.model_features,
                        dataset_features=cfg.dataset_features, encoder=encoder_for(cfg),
                        score_metrics=cfg.score_metrics)
