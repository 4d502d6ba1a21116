"""The gnn's additive baseline: mu + model effect + dataset effect on message edges.

The same model as `AdditivePredictor`, fitted on whichever record edges are message edges in a
batch, with one addition: each effect is shrunk toward a prior regressed on node features, so a
node without edges (cold start) gets a level from its metadata instead of 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from tpred.models.additive import additive_effects
from tpred.models.neighbours import neighbour_level

#: alternating least-squares sweeps (as `AdditivePredictor`)
BASELINE_ITERS = 20
#: decoder inputs the baseline gives per pair: model effect, dataset effect, log1p degrees
NUM_BASELINE_TERMS = 4
#: the feature prior: kernel-ridge penalty (relative to the mean squared feature norm) and its
#: weight in pseudo-edges (0 turns the prior off)
PRIOR_RIDGE = 1.0
PRIOR_STRENGTH = 2.0


@dataclass
class Baseline:
    """mu + model_effect[m] + dataset_effect[d], and each node's number of edges.

    Shapes: model_effect, model_degree [num_models]; dataset_effect, dataset_degree
        [num_datasets].
    """

    mu: float
    model_effect: np.ndarray
    dataset_effect: np.ndarray
    model_degree: np.ndarray
    dataset_degree: np.ndarray

    def __call__(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Baseline accuracy of pairs (src model, dst dataset) [P]."""
        return self.mu + self.model_effect[src] + self.dataset_effect[dst]

    def terms(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Decoder inputs [P, NUM_BASELINE_TERMS]: both effects, log1p of both degrees."""
        return np.stack([self.model_effect[src], self.dataset_effect[dst],
                         np.log1p(self.model_degree[src]), np.log1p(self.dataset_degree[dst])],
                        axis=1)


@dataclass
class PriorNeighbours:
    """The neighbours of one node type for the feature prior's neighbour level
    (`shrink_to_prior`): each node's others in similarity order and their weights
    (`neighbours.neighbour_order`, `neighbour_weight`), and how many are averaged.

    Shapes: order, weight [N, N].
    """

    order: np.ndarray
    weight: np.ndarray
    k: int


def fit_baseline(src: np.ndarray, dst: np.ndarray, acc: np.ndarray, num_models: int,
                 num_datasets: int, *, fallback_mu: float, model_gram: np.ndarray | None = None,
                 dataset_gram: np.ndarray | None = None,
                 model_neighbours: PriorNeighbours | None = None,
                 dataset_neighbours: PriorNeighbours | None = None) -> Baseline:
    """Additive baseline on edges, each effect shrunk toward a prior predicted from features.

    First mu + model effect + dataset effect by alternating least squares
    (`additive_effects`, the code of `AdditivePredictor`). Then, when a Gram matrix of node
    features is given, each node type's effects are regressed on the features by kernel ridge
    (linear kernel, ridge `PRIOR_RIDGE` × mean diagonal; fitted on the nodes with edges) and
    every effect becomes (n · effect + PRIOR_STRENGTH · prior) / (n + PRIOR_STRENGTH), n the
    node's edge count: a node without edges (cold start) gets its prior instead of 0, a node
    with few edges is pulled toward it. With `*_neighbours`, the prior is the mean of the
    kernel-ridge prediction and the neighbour level (see `shrink_to_prior`). Without edges at
    all, mu is `fallback_mu` and every effect 0.

    Shapes: src, dst, acc [E]; model_gram [num_models, num_models], dataset_gram
        [num_datasets, num_datasets] -> effects [num_models], [num_datasets].
    """
    return fit_shrunk_baseline(src, dst, acc, num_models, num_datasets, fallback_mu=fallback_mu,
                               shrink_models=lambda e, n: shrink_to_prior(e, n, model_gram,
                                                                          model_neighbours),
                               shrink_datasets=lambda e, n: shrink_to_prior(e, n, dataset_gram,
                                                                            dataset_neighbours))


def fit_shrunk_baseline(src: np.ndarray, dst: np.ndarray, acc: np.ndarray, num_models: int,
                        num_datasets: int, *, fallback_mu: float,
                        shrink_models: Callable[[np.ndarray, np.ndarray], np.ndarray],
                        shrink_datasets: Callable[[np.ndarray, np.ndarray], np.ndarray]
                        ) -> Baseline:
    """The additive fit of `fit_baseline`, each node type's effects then passed through its
    `shrink(effect [N], degree [N]) -> [N]` (the kernel prior here, the feature-space prior of
    the mini-batch gnn)."""
    deg_m = np.bincount(src, minlength=num_models).astype(np.float64)
    deg_d = np.bincount(dst, minlength=num_datasets).astype(np.float64)
    if len(acc) == 0:
        return Baseline(fallback_mu, np.zeros(num_models), np.zeros(num_datasets), deg_m, deg_d)
    mu, me, de = additive_effects(src, dst, acc, num_models, num_datasets,
                                  num_iters=BASELINE_ITERS)
    return Baseline(mu, shrink_models(me, deg_m), shrink_datasets(de, deg_d), deg_m, deg_d)


def shrink_to_prior(effect: np.ndarray, degree: np.ndarray, gram: np.ndarray | None,
                    neighbours: PriorNeighbours | None = None) -> np.ndarray:
    """Effects pulled toward a prior predicted from node features (see `fit_baseline`).

    The prior is a kernel-ridge prediction; with `neighbours`, the mean of it and the
    neighbour level: the similarity-weighted mean effect of the `k` most similar nodes with
    edges (`knn`'s level of a new node; a node whose neighbours all have weight 0 keeps the
    kernel-ridge prior). The ridge extrapolates a trend of the features, the neighbour level
    averages nodes like this one; their mean predicted held-out datasets' levels better than
    either on inner splits of the benchmarks (bench/README.md, "The cold-dataset level").

    Shapes: effect, degree [N]; gram [N, N] -> [N].
    """
    seen = degree > 0
    if gram is None or PRIOR_STRENGTH == 0 or seen.sum() < 2:
        return effect
    k = gram[np.ix_(seen, seen)]                                              # [T, T]
    level = effect[seen].mean()
    ridge = PRIOR_RIDGE * max(float(np.mean(np.diag(k))), 1e-12)
    # torch (one thread inside fit/predict): numpy's BLAS threads stall on a busy machine
    coef = torch.linalg.solve(torch.from_numpy(k + ridge * np.eye(len(k))),
                              torch.from_numpy(effect[seen] - level)).numpy()   # [T]
    prior = level + gram[:, seen] @ coef                                      # [N]
    if neighbours is not None and neighbours.k:
        level_nb, has = neighbour_level(effect, seen, neighbours.order, neighbours.weight,
                                        neighbours.k)                         # [N], [N]
        prior = np.where(has, (prior + level_nb) / 2, prior)
    return (degree * effect + PRIOR_STRENGTH * prior) / (degree + PRIOR_STRENGTH)


#: the level moved after the network (`move_dataset_level`) is added in accuracy units up to
#: this far from 0 and 1, and saturates beyond (so that moved predictions stay in (0, 1))
LEVEL_MARGIN = 0.02


def move_dataset_level(pred: np.ndarray, std: np.ndarray, before: Baseline, after: Baseline,
                       dst: np.ndarray, *, movable: np.ndarray | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Predictions of datasets without edges moved, each dataset's by the change of its effect
    from `before` to `after`, kept strictly increasing and inside (0, 1).

    A prediction p of a dataset d without edges becomes
    soft_clip(p + after.dataset_effect[d] - before.dataset_effect[d]), where soft_clip is the
    identity on [LEVEL_MARGIN, 1 - LEVEL_MARGIN] and approaches 0 and 1 exponentially beyond
    (continuous with slope 1 at the margins; `soft_clip`). A move in accuracy units is what
    the baseline's level is, and the saturation keeps each dataset's ranking of models: a hard
    clip at 1 would tie the top models of a dataset moved up. (A shift of the logit would keep
    it too, but it moves a prediction far from the dataset's level by several times the
    level's change: worse RMSE on inner splits.) The standard deviation moves with the slope
    of soft_clip.

    Kept as they are: the predictions of a dataset with edges (`before.dataset_degree` > 0;
    the network read its level from its records, and moving those too cost RMSE on inner
    splits of sfda11, bench/README.md, "The cold-dataset level"), of one that `movable`
    (None: all) excludes, and of one whose effect did not change.

    Shapes: pred, std, dst [P]; movable [num_datasets] bool -> [P], [P].
    """
    shift = np.nan_to_num(level_shift(before, after, movable))[dst]               # [P]
    moved, slope = soft_clip(pred + shift, LEVEL_MARGIN)
    still = shift == 0
    return np.where(still, pred, moved), np.where(still, std, std * slope)


def level_shift(before: Baseline, after: Baseline, movable: np.ndarray | None = None
                ) -> np.ndarray:
    """Each dataset's move in `move_dataset_level`: after.dataset_effect - before.dataset_effect
    for a dataset without edges that `movable` (None: all) allows, NaN for the others (kept as
    they are). The one definition of the shift, read by the move and by
    `GNNPredictor.level_moves`, which reports it.

    Shapes: movable [num_datasets] bool -> [num_datasets].
    """
    keep = before.dataset_degree > 0
    if movable is not None:
        keep |= ~movable
    return np.where(keep, np.nan, after.dataset_effect - before.dataset_effect)


def soft_clip(x: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """x on [margin, 1 - margin]; below, margin · exp((x - margin) / margin) (toward 0); above,
    1 - margin · exp((1 - margin - x) / margin) (toward 1). Strictly increasing and in (0, 1)
    (in float64 it rounds to 1 from about 33 margins above 1 - margin), with a continuous
    slope, which is returned beside it. Hand-written: numpy and scipy have hard clips and
    sigmoids, not a clip that is linear in the middle.

    Shapes: x [P] -> [P], [P].
    """
    low = margin * np.exp(np.minimum(x - margin, 0.0) / margin)
    high = margin * np.exp(np.minimum(1 - margin - x, 0.0) / margin)
    below, above = x < margin, x > 1 - margin
    y = np.where(below, low, np.where(above, 1 - high, x))
    slope = np.where(below, low / margin, np.where(above, high / margin, 1.0))
    return y, slope
