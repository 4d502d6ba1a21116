"""`mf`: additive baseline plus a low-rank factorisation of its residual (matrix completion)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tpred.data.zoo import Zoo
from tpred.errors import NotFittedError
from tpred.models.base import register

#: floor of the residual's standard deviation (an exactly additive table has none), so that the
#: scaled ridge stays positive and every normal-equation system stays solvable
SCALE_EPS = 1e-8


class MatrixFactorizationPredictor:
    """mu + model effect + dataset effect + u_model · v_dataset, fitted jointly on train pairs.

    The models × datasets table of training accuracies is fitted by alternating least squares:
    each sweep updates the effects given the factors (means of the observed cells, as `additive`
    does, mu fixed to the mean accuracy), then the model factors U [M, k] given V, then V [D, k]
    given U, each a ridge regression per row. The ridge is `reg · s`, where s is the standard
    deviation of the training residual of the additive part: this is a ridge of `reg` on the
    factors of the residual divided by s, so `reg` does not depend on the accuracy scale.

    A model or dataset absent from the training pairs has effect 0 and factor 0: its prediction is
    the additive one (cold start). No side information is used, so on a cold-dataset protocol `mf`
    equals `additive`.

    Args:
        rank: k, the number of factors.
        reg: ridge penalty on the factors, in units of the residual's standard deviation (> 0).
        num_iters: alternating sweeps.
        random_state: seed of the factors' initialisation.
    """

    def __init__(self, *, rank: int = 2, reg: float = 1.0, num_iters: int = 50,
                 random_state: int = 0) -> None:
        self.rank = rank
        self.reg = reg
        self.num_iters = num_iters
        self.random_state = random_state

    def fit(self, zoo: Zoo, train_pairs: pd.DataFrame) -> MatrixFactorizationPredictor:
        """Factorise the training table.

        Raises:
            ValueError: `rank` < 1, `reg` <= 0 or `num_iters` < 1.
        """
        if self.rank < 1:
            raise ValueError(f"MatrixFactorizationPredictor: rank must be >= 1, got {self.rank}")
        if not self.reg > 0:
            raise ValueError(f"MatrixFactorizationPredictor: reg must be > 0, got {self.reg}")
        if self.num_iters < 1:
            raise ValueError(f"MatrixFactorizationPredictor: num_iters must be >= 1, "
                             f"got {self.num_iters}")
        acc = zoo.accuracy(train_pairs)                                   # [P]
        rows, model_ids = pd.factorize(train_pairs["model"].to_numpy())
        cols, dataset_ids = pd.factorize(train_pairs["dataset"].to_numpy())
        num_rows, num_cols = len(model_ids), len(dataset_ids)
        observed = np.zeros((num_rows, num_cols))                         # [M, D] 1 = record
        table = np.zeros((num_rows, num_cols))                            # [M, D] 0 elsewhere
        observed[rows, cols] = 1.0
        table[rows, cols] = acc
        row_count, col_count = observed.sum(1), observed.sum(0)           # [M], [D]

        mu = float(acc.mean())
        model_effect, dataset_effect = np.zeros(num_rows), np.zeros(num_cols)
        u, v = np.zeros((num_rows, self.rank)), np.zeros((num_cols, self.rank))

        def update_effects() -> None:
            nonlocal model_effect, dataset_effect
            rest = observed * (table - mu - u @ v.T)                      # [M, D]
            model_effect = (rest - observed * dataset_effect).sum(1) / row_count
            dataset_effect = (rest - observed * model_effect[:, None]).sum(0) / col_count

        for _ in range(20):  # the additive fit alone, to measure the residual's scale
            update_effects()
        resid = (table - mu - model_effect[:, None] - dataset_effect)[rows, cols]
        scale = max(float(resid.std()), SCALE_EPS)
        ridge = self.reg * scale * np.eye(self.rank)                      # [k, k]
        rng = np.random.default_rng(self.random_state)
        # factors of a product ~ s in magnitude have entries ~ sqrt(s); start well below it
        u = rng.normal(0, 0.1 * np.sqrt(scale), (num_rows, self.rank))
        v = rng.normal(0, 0.1 * np.sqrt(scale), (num_cols, self.rank))
        for _ in range(self.num_iters):
            update_effects()
            target = observed * (table - mu - model_effect[:, None] - dataset_effect)  # [M, D]
            u = _ridge_rows(observed, target, v, ridge)
            v = _ridge_rows(observed.T, target.T, u, ridge)

        self.mu_ = mu
        self.model_effect_ = pd.Series(model_effect, index=model_ids)
        self.dataset_effect_ = pd.Series(dataset_effect, index=dataset_ids)
        self.model_factors_ = pd.DataFrame(u, index=model_ids)            # [M, k]
        self.dataset_factors_ = pd.DataFrame(v, index=dataset_ids)        # [D, k]
        return self

    def predict(self, pairs: pd.DataFrame, zoo: Zoo | None = None) -> np.ndarray:
        """Predicted accuracies [P]; an id without training records gets effect and factor 0.

        `zoo` is accepted for the common interface and not needed: `mf` uses no metadata.

        Raises:
            NotFittedError: before `fit`.
        """
        if not hasattr(self, "mu_"):
            raise NotFittedError("MatrixFactorizationPredictor is not fitted; call "
                                 "fit(zoo, train_pairs)")
        models, datasets = pairs["model"].to_numpy(), pairs["dataset"].to_numpy()
        m = self.model_effect_.reindex(models).fillna(0.0).to_numpy()
        d = self.dataset_effect_.reindex(datasets).fillna(0.0).to_numpy()
        u = self.model_factors_.reindex(models).fillna(0.0).to_numpy()    # [P, k]
        v = self.dataset_factors_.reindex(datasets).fillna(0.0).to_numpy()  # [P, k]
        return self.mu_ + m + d + (u * v).sum(1)                          # [P]


def _ridge_rows(observed: np.ndarray, target: np.ndarray, other: np.ndarray,
                ridge: np.ndarray) -> np.ndarray:
    """Per row i: argmin_x sum_j observed_ij (target_ij - x · other_j)^2 + x' ridge x.

    Shapes: observed, target [N, C] (target 0 where unobserved); other [C, k]; ridge [k, k]
    -> [N, k]. A row without observations gets 0.
    """
    gram = np.einsum("nc,ck,cl->nkl", observed, other, other) + ridge    # [N, k, k]
    rhs = target @ other                                                  # [N, k]
    return np.linalg.solve(gram, rhs[..., None])[..., 0]


@register("mf")
def _make_mf(cfg) -> MatrixFactorizationPredictor:
    return MatrixFactorizationPredictor()
