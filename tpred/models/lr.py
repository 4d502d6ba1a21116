"""`lr`: ridge regression of accuracy on [model features ‖ dataset features ‖ scores]."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.linear_model import RidgeCV
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
        self.scaler_ = StandardScaler().fit(X)
        Xs = self.scaler_.transform(X)                                    # [P, F]
        # Each node block of Xs has one distinct row per training node, so its row space has at
        # most that many dimensions (a few hundred text dimensions on 10 models: far fewer).
        # Ridge coefficients lie in the row space, so fitting in an orthonormal basis of each
        # block's row space gives the same predictions, penalty and leave-one-out, much faster.
        sizes = [self._block_width("model"), self._block_width("dataset")]
        bases, start = [], 0
        for col, size in zip(("model", "dataset"), sizes, strict=True):
            first = np.unique(train_pairs[col].to_numpy(dtype=str), return_index=True)[1]
            bases.append(_row_space(Xs[first, start:start + size]))     # [size, r]
            start += size
        bases.append(np.eye(X.shape[1] - start))                          # scores: kept as is
        self.projection_ = _block_diagonal(bases)                         # [F, R]
        self.ridge_ = RidgeCV(alphas=list(self.alphas)).fit(Xs @ self.projection_, acc)
        self.alpha_ = float(self.ridge_.alpha_)
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, pairs: pd.DataFrame, zoo: Zoo | None = None) -> np.ndarray:
        """Predicted accuracies [P]; `zoo` (default: the fitted one) describes the pairs' nodes.

        Raises:
            NotFittedError: before `fit`.
            ValueError: a pair names an id that `zoo` does not describe.
        """
        if not hasattr(self, "ridge_"):
            raise NotFittedError("LinearPredictor is not fitted; call fit(zoo, train_pairs)")
        zoo = self.zoo_ if zoo is None else zoo
        check_ids_in_zoo(pairs, zoo, "LinearPredictor.predict")
        if not len(pairs):  # scikit-learn transformers refuse 0 rows
            return np.zeros(0)
        Xs = self.scaler_.transform(self._design(zoo, pairs))             # [P, F]
        return self.ridge_.predict(Xs @ self.projection_)                 # [P]

    def _block_width(self, col: str) -> int:
        inputs = getattr(self, f"{col}_inputs_")
        if inputs.featurizer_ is None:
            return len(getattr(self, f"{col}_ids_"))
        return int(inputs.featurizer_.n_features_out_)

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


#: eigenvalues of a Gram matrix below this fraction of the largest are numerical zeros (singular
#: values below 1e-6 of the largest: their ridge coefficients are ~1e-6 of the others at most)
RANK_TOL = 1e-12


def _row_space(rows: np.ndarray) -> np.ndarray:
    """Orthonormal basis of the row space of `rows` [N, F], as columns [F, r].

    From the eigenvectors of the smaller Gram matrix: N x N when N <= F (a few models with text
    features: milliseconds where LAPACK's SVD of the N x F matrix took seconds), else F x F (a
    hub-sized zoo's 10^5 datasets would make N x N 80 GB); both span the same space.
    """
    if rows.size == 0:
        return np.zeros((rows.shape[1], 0))
    if rows.shape[0] > rows.shape[1]:
        eigval, eigvec = np.linalg.eigh(rows.T @ rows)                    # [F], [F, F]
        keep = eigval > RANK_TOL * max(eigval.max(), 0.0)
        return eigvec[:, keep]                                            # [F, r]
    eigval, eigvec = np.linalg.eigh(rows @ rows.T)                        # [N], [N, N]
    keep = eigval > RANK_TOL * max(eigval.max(), 0.0)
    if not keep.any():
        return np.zeros((rows.shape[1], 0))
    return rows.T @ eigvec[:, keep] / np.sqrt(eigval[keep])               # [F, r]


def _block_diagonal(blocks: list[np.ndarray]) -> np.ndarray:
    """Block-diagonal matrix of 2-D blocks (some may have zero rows or columns)."""
    out = np.zeros((sum(b.shape[0] for b in blocks), sum(b.shape[1] for b in blocks)))
    r = c = 0
    for b in blocks:
        out[r:r + b.shape[0], c:c + b.shape[1]] = b
        r, c = r + b.shape[0], c + b.shape[1]
    return out


@register("lr")
def _make_lr(cfg) -> LinearPredictor:
    return LinearPredictor(model_features=cfg.model_features,
                           dataset_features=cfg.dataset_features, encoder=encoder_for(cfg),
                           score_metrics=cfg.score_metrics)
