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
#: candidate ridges when `reg=None` (in units of the residual's standard deviation): from a nearly
#: exact low-rank fit to factors shrunk to 0 on small noisy tables (the additive part alone)
REG_GRID = (0.01, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


class MatrixFactorizationPredictor:
    """mu + model effect + dataset effect + u_model · v_dataset, fitted jointly on train pairs.

    The models × datasets table of training accuracies is fitted by alternating least squares:
    each sweep updates the effects given the factors (means of the observed cells, as `additive`
    does, mu fixed to the mean accuracy), then the model factors U [M, k] given V, then V [D, k]
    given U, each a ridge regression per row. The ridge is `reg · s`, where s is the standard
    deviation of the training residual of the additive part: this is a ridge of `reg` on the
    factors of the residual divided by s, so `reg` does not depend on the accuracy scale.

    With `reg=None` (default) the ridge is chosen among `REG_GRID` by the squared error on a
    validation part (`val_fraction` of the training pairs, drawn with `random_state`) of a fit on
    the rest; the final fit uses every training pair. A sparse table needs a strong ridge (with
    5 records per dataset, 2 factors per dataset fit noise), a dense low-rank one a weak one.

    A model or dataset absent from the training pairs has effect 0 and factor 0: its prediction is
    the additive one (cold start). No side information is used, so on a cold-dataset protocol `mf`
    equals `additive`.

    Args:
        rank: k, the number of factors.
        reg: ridge on the factors in units of the residual's standard deviation (> 0), or None to
            choose it on a validation part of the training pairs.
        num_iters: alternating sweeps.
        val_fraction: share of the training pairs held out to choose `reg` (when it is None).
        random_state: seed of the factors' initialisation and of the validation draw.
    """

    def __init__(self, *, rank: int = 2, reg: float | None = None, num_iters: int = 50,
                 val_fraction: float = 0.2, random_state: int = 0) -> None:
        self.rank = rank
        self.reg = reg
        self.num_iters = num_iters
        self.val_fraction = val_fraction
        self.random_state = random_state

    def fit(self, zoo: Zoo, train_pairs: pd.DataFrame) -> MatrixFactorizationPredictor:
        """Factorise the training table (after choosing the ridge when `reg` is None).

        Raises:
            ValueError: `rank` < 1, `reg` <= 0, `num_iters` < 1 or `val_fraction` outside (0, 1).
        """
        if self.rank < 1:
            raise ValueError(f"MatrixFactorizationPredictor: rank must be >= 1, got {self.rank}")
        if self.reg is not None and not self.reg > 0:
            raise ValueError(f"MatrixFactorizationPredictor: reg must be > 0 or None, "
                             f"got {self.reg}")
        if self.num_iters < 1:
            raise ValueError(f"MatrixFactorizationPredictor: num_iters must be >= 1, "
                             f"got {self.num_iters}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"MatrixFactorizationPredictor: val_fraction must be in (0, 1), "
                             f"got {self.val_fraction}")
        acc = zoo.accuracy(train_pairs)                                   # [P]
        rows, model_ids = pd.factorize(train_pairs["model"].to_numpy())
        cols, dataset_ids = pd.factorize(train_pairs["dataset"].to_numpy())
        shape = (len(model_ids), len(dataset_ids))
        self.reg_ = self.reg
        if self.reg_ is None:
            val = np.random.default_rng(self.random_state).random(len(acc)) < self.val_fraction
            errors = []
            for reg in REG_GRID:
                mu, b_m, b_d, u, v = self._fit_table(rows[~val], cols[~val], acc[~val], shape, reg)
                pred = mu + b_m[rows[val]] + b_d[cols[val]] + (u[rows[val]] * v[cols[val]]).sum(1)
                errors.append(float(np.mean((pred - acc[val]) ** 2)))
            self.reg_ = REG_GRID[int(np.argmin(errors))]
            self.val_errors_ = dict(zip(REG_GRID, errors, strict=True))
        mu, b_m, b_d, u, v = self._fit_table(rows, cols, acc, shape, self.reg_)
        self.mu_ = mu
        self.model_effect_ = pd.Series(b_m, index=model_ids)
        self.dataset_effect_ = pd.Series(b_d, index=dataset_ids)
        self.model_factors_ = pd.DataFrame(u, index=model_ids)            # [M, k]
        self.dataset_factors_ = pd.DataFrame(v, index=dataset_ids)        # [D, k]
        return self

    def _fit_table(self, rows: np.ndarray, cols: np.ndarray, acc: np.ndarray,
                   shape: tuple[int, int], reg: float) -> tuple:
        """Alternating least squares on the cells (rows, cols) of a table of `shape`.

        Shapes: rows, cols, acc [P] -> mu, model effect [M], dataset effect [D], U [M, k],
        V [D, k]; a row or column without cells gets effect 0 and factor 0.
        """
        # the table as its known cells (rows, cols, acc [P]): nothing [M, D] is built, so
        # time and memory grow with the records (a hub-sized zoo's table would not fit)
        row_count = np.bincount(rows, minlength=shape[0]).astype(np.float64)   # [M]
        col_count = np.bincount(cols, minlength=shape[1]).astype(np.float64)   # [D]
        mu = float(acc.mean())
        model_effect, dataset_effect = np.zeros(shape[0]), np.zeros(shape[1])
        u, v = np.zeros((shape[0], self.rank)), np.zeros((shape[1], self.rank))

        def update_effects() -> None:
            nonlocal model_effect, dataset_effect
            rest = acc - mu - (u[rows] * v[cols]).sum(1)                  # [P]
            model_effect = _mean(np.bincount(rows, rest - dataset_effect[cols], shape[0]),
                                 row_count)
            dataset_effect = _mean(np.bincount(cols, rest - model_effect[rows], shape[1]),
                                   col_count)

        for _ in range(20):  # the additive fit alone, to measure the residual's scale
            update_effects()
        resid = acc - mu - model_effect[rows] - dataset_effect[cols]
        scale = max(float(resid.std()), SCALE_EPS)
        ridge = reg * scale * np.eye(self.rank)                           # [k, k]
        rng = np.random.default_rng(self.random_state)
        # factors of a product ~ s in magnitude have entries ~ sqrt(s); start well below it
        u = rng.normal(0, 0.1 * np.sqrt(scale), (shape[0], self.rank))
        v = rng.normal(0, 0.1 * np.sqrt(scale), (shape[1], self.rank))
        for _ in range(self.num_iters):
            update_effects()
            target = acc - mu - model_effect[rows] - dataset_effect[cols]  # [P]
            u = _ridge_rows(rows, cols, target, v, ridge, shape[0])
            v = _ridge_rows(cols, rows, target, u, ridge, shape[1])
        return mu, model_effect, dataset_effect, u, v

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


def _mean(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    """total / count, 0 where count is 0 (a node without cells has effect 0)."""
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


def _ridge_rows(own: np.ndarray, other_pos: np.ndarray, target: np.ndarray,
                other: np.ndarray, ridge: np.ndarray, num_rows: int) -> np.ndarray:
    """Per row i: argmin_x sum over i's cells c of (target_c - x · other[other_pos_c])^2
    + x' ridge x.

    Shapes: own, other_pos, target [P] (the cells: row, column, value); other [C, k];
    ridge [k, k] -> [num_rows, k]. A row without cells gets 0.
    """
    k = other.shape[1]
    feats = other[other_pos]                                              # [P, k]
    outer = (feats[:, :, None] * feats[:, None, :]).reshape(len(own), k * k)  # [P, k*k]
    gram = np.stack([np.bincount(own, outer[:, j], num_rows) for j in range(k * k)], axis=1)
    gram = gram.reshape(num_rows, k, k) + ridge                           # [N, k, k]
    rhs = np.stack([np.bincount(own, target * feats[:, j], num_rows) for j in range(k)],
                   axis=1)                                                # [N, k]
    return np.linalg.solve(gram, rhs[..., None])[..., 0]


@register("mf")
def _make_mf(cfg) -> MatrixFactorizationPredictor:
    return MatrixFactorizationPredictor()
