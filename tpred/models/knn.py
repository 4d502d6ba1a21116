"""`knn`: the additive baseline corrected by the residuals of the most similar neighbours."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

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
from tpred.models.sparse_neighbours import (
    Similarity,
    blocked_neighbour_mean,
    candidate_neighbour_mean,
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
        # the residual table as its known cells (a dense [M, D] table would not fit a hub-sized
        # zoo): model row, dataset column, residual [P] each
        self.residual_cells_ = (rows.astype(np.int64), cols.astype(np.int64), resid)
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

        Memory and time grow with the pairs and the records of their nodes, never with
        models × datasets (`tpred.models.sparse_neighbours`).

        Raises:
            NotFittedError: before `fit`.
            ValueError: a pair names an id that `zoo` does not describe.
        """
        if not hasattr(self, "residual_cells_"):
            raise NotFittedError("KNNPredictor is not fitted; call fit(zoo, train_pairs)")
        zoo = self.zoo_ if zoo is None else zoo
        check_ids_in_zoo(pairs, zoo, "KNNPredictor.predict")
        if not len(pairs):  # scikit-learn transformers refuse 0 rows
            return np.zeros(0)
        uniq_m, inv_m = np.unique(pairs["model"].to_numpy(dtype=str), return_inverse=True)
        uniq_d, inv_d = np.unique(pairs["dataset"].to_numpy(dtype=str), return_inverse=True)
        sim_m, sim_d = self._similarity(zoo, "model", uniq_m), self._similarity(zoo, "dataset",
                                                                                 uniq_d)
        pos_m = self.model_ids_.get_indexer(uniq_m)[inv_m]                # [P] -1: new
        pos_d = self.dataset_ids_.get_indexer(uniq_d)[inv_d]              # [P] -1: new

        add = self.additive_
        effect_m = add.model_effect_.reindex(self.model_ids_).to_numpy()  # [M]
        effect_d = add.dataset_effect_.reindex(self.dataset_ids_).to_numpy()  # [D]
        b_m = self._effect(pos_m, inv_m, sim_m, effect_m)                 # [P]
        b_d = self._effect(pos_d, inv_d, sim_d, effect_d)                 # [P]

        # residuals of m on datasets like d; for a new model, on d of models like m
        rows, cols, resid = self.residual_cells_
        k = self.n_neighbors
        seen = pos_m >= 0
        interaction = np.zeros(len(pairs))                                # [P]
        interaction[seen] = candidate_neighbour_mean(
            pos_m[seen], inv_d[seen], rows, cols, resid, len(self.model_ids_), sim_d, k)
        other = ~seen & (pos_d >= 0)
        interaction[other] = candidate_neighbour_mean(
            pos_d[other], inv_m[other], cols, rows, resid, len(self.dataset_ids_), sim_m, k)
        return add.mu_ + b_m + b_d + interaction                          # [P]

    def level_spread(self, datasets: Sequence[str], zoo: Zoo | None = None,
                     k: int | None = None) -> np.ndarray:
        """How much the level of a dataset's neighbourhood varies: the similarity-weighted
        standard deviation of the additive dataset effects of its k most similar training
        datasets (itself excluded), with the weights of `predict` (max(similarity, 0)). A
        dataset no training dataset resembles (every weight 0) gets the plain std of every
        training dataset's effect: nothing says where its level is. The std calibration uses it
        as a per-dataset width (`tpred.checkpoint.Calibration`): a new dataset's error is mostly
        its level, and a neighbourhood whose levels disagree leaves the level less certain.

        Args:
            datasets: ids described by `zoo` (training datasets or new ones).
            zoo: default the fitted zoo.
            k: neighbours (default `n_neighbors`; the calibration passes
                `tpred.checkpoint.LEVEL_NEIGHBOURS`).

        Shapes: datasets [D] -> [D].

        Raises:
            NotFittedError: before `fit`.
        """
        if not hasattr(self, "residual_cells_"):
            raise NotFittedError("KNNPredictor is not fitted; call fit(zoo, train_pairs)")
        zoo = self.zoo_ if zoo is None else zoo
        k = self.n_neighbors if k is None else k
        ids = np.asarray(datasets, dtype=str)
        effect = self.additive_.dataset_effect_.reindex(self.dataset_ids_).to_numpy()  # [N]
        pos = self.dataset_ids_.get_indexer(ids)
        out = np.full(len(ids), float(effect.std()) if len(effect) else 0.0)
        for trained in (True, False):
            if not (at := (pos >= 0) == trained).any():
                continue
            if trained:                               # a training dataset: itself excluded
                rows = pos[at]
                sim = Similarity(self.dataset_vectors_, self.dataset_vectors_, same_nodes=True)
            else:
                rows = np.arange(int(at.sum()))
                sim = self._similarity(zoo, "dataset", ids[at])
            mean, square, weighed = blocked_neighbour_mean(          # [R, 3]: one ordering
                rows, sim, np.stack([effect, effect ** 2, np.ones_like(effect)], axis=1), k).T
            spread = np.sqrt(np.maximum(square - mean ** 2, 0.0))
            out[at] = np.where(weighed > 0, spread, out[at])
        return out

    def _effect(self, pos: np.ndarray, inv: np.ndarray, sim: Similarity,
                effect: np.ndarray) -> np.ndarray:
        """Each pair's node effect: its own when trained, else the similarity-weighted mean
        effect of its k most similar training nodes [P]."""
        out = np.zeros(len(pos))
        out[pos >= 0] = effect[pos[pos >= 0]]
        new = np.unique(inv[pos < 0])                                     # query rows
        if len(new):
            mean = blocked_neighbour_mean(new, sim, effect, self.n_neighbors)
            out[pos < 0] = mean[np.searchsorted(new, inv[pos < 0])]
        return out

    def _similarity(self, zoo: Zoo, kind: str, ids: np.ndarray) -> Similarity:
        """Similarity of nodes `ids` of `zoo` (query rows) to the training nodes of the type."""
        return Similarity(self._vectors(zoo, kind, ids), getattr(self, f"{kind}_vectors_"))

    def _vectors(self, zoo: Zoo, kind: str, ids: Sequence[str]
                 ) -> tuple[np.ndarray, sp.csr_matrix]:
        """(centred node features [n, F], sparse score vectors [n, N_other · S]) of `ids`.

        A node's score vector holds its z-scored scores (`dataset_zscores`) against every
        training node of the other type, metric by metric (column other · S + s); a missing
        score is 0, so only scored pairs are stored.
        """
        if kind == "model":
            features = self.model_inputs_.transform(zoo.models, ids) - self.model_center_
            other, other_col = self.dataset_ids_, "dataset"
        else:
            features = self.dataset_inputs_.transform(zoo.datasets, ids) - self.dataset_center_
            other, other_col = self.model_ids_, "model"
        ids = pd.Index(ids)
        num_s = len(self.score_metrics_)
        scored = zoo.scores.loc[zoo.scores["metric"].isin(self.score_metrics_)
                                & zoo.scores[kind].isin(ids)
                                & zoo.scores[other_col].isin(other), ["model", "dataset"]]
        scored = scored.drop_duplicates().reset_index(drop=True)
        z = np.nan_to_num(dataset_zscores(zoo, scored, self.score_metrics_))  # [E_s, S]
        row = np.repeat(ids.get_indexer(scored[kind].to_numpy()), num_s)
        col = (np.repeat(other.get_indexer(scored[other_col].to_numpy()), num_s) * num_s
               + np.tile(np.arange(num_s), len(scored)))
        scores = sp.csr_matrix((z.ravel(), (row, col)), shape=(len(ids), len(other) * num_s))
        return features, scores


@register("knn")
def _make_knn(cfg) -> KNNPredictor:
    return KNNPredictor(model_features=cfg.model_features,
                        dataset_features=cfg.dataset_features, encoder=encoder_for(cfg),
                        score_metrics=cfg.score_metrics)
