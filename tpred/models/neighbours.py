"""Neighbour residuals shared by `knn` and the gnn's neighbour terms.

Both correct an additive baseline by what similar nodes deviate from it: for a pair (m, d), the
similarity-weighted residual of model m on the datasets most like d, and of the models most like
m on dataset d. Only the similarities and the residual table differ between the two (`knn`
averages feature and score cosines over training nodes; the gnn uses feature cosines over every
node and the residuals of the current message edges).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.metrics.pairwise import cosine_similarity as _cosine
from sklearn.utils.extmath import row_norms

#: a row whose L2 norm is at most this fraction of the largest row norm it is compared with is
#: round-off of a zero row (e.g. a node's centred features where they equal the training
#: mean): it is set to zero, similar to nothing, instead of being normalised into a unit vector
#: of noise with a similarity of up to ±1 to anything
ZERO_ROW_TOLERANCE = 1e-9


def zero_round_off_rows(a: np.ndarray | sp.spmatrix, b: np.ndarray | sp.spmatrix
                        ) -> tuple[np.ndarray | sp.spmatrix, np.ndarray | sp.spmatrix]:
    """a and b (float64) with every row of norm at most `ZERO_ROW_TOLERANCE` times the largest
    row norm of the two set to zero; each matrix's row norms are computed once (sklearn's
    `row_norms`, dense or sparse).

    Shapes: a [Q, F], b [N, F] -> [Q, F], [N, F].
    """
    norms = [row_norms(x) for x in (a, b)]                                 # [Q], [N]
    scale = max(n.max(initial=0.0) for n in norms)
    out = []
    for x, n in zip((a, b), norms, strict=True):
        small = n <= ZERO_ROW_TOLERANCE * scale
        if sp.issparse(x):
            x = sp.csr_matrix(x, dtype=np.float64)
            out.append(sp.diags((~small).astype(np.float64)) @ x if small.any() else x)
        else:
            x = np.asarray(x, dtype=np.float64)
            out.append(np.where(small[:, None], 0.0, x) if small.any() else x)
    return out[0], out[1]


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of rows; a zero row, or one whose norm is round-off
    (`ZERO_ROW_TOLERANCE` of the largest row norm of a and b), is similar to nothing (0).

    Shapes: a [Q, F], b [N, F] -> [Q, N].
    """
    if a.shape[1] == 0:
        return np.zeros((len(a), len(b)))
    return _cosine(*zero_round_off_rows(a, b))


def self_excluded_similarity(x: np.ndarray) -> np.ndarray | None:
    """Cosine similarity of the rows of `x` with the diagonal at -inf (None: no features).

    The -inf keeps a node from ever being its own neighbour in `neighbour_mean`.

    Shapes: x [N, F] -> [N, N].
    """
    if x.shape[1] == 0:
        return None
    sim = cosine_similarity(x, x)
    np.fill_diagonal(sim, -np.inf)
    return sim


def neighbour_order(sim: np.ndarray) -> np.ndarray:
    """Each row's columns by decreasing similarity, ties by position (a stable sort).

    Shapes: sim [P, N] -> [P, N] int64.
    """
    return np.argsort(-sim, axis=1, kind="stable")


def neighbour_weight(sim: np.ndarray, order: np.ndarray) -> np.ndarray:
    """max(sim, 0) in `order` (`neighbour_order`): the weights `sorted_neighbour_mean` reads.

    Shapes: sim, order [P, N] -> [P, N].
    """
    return np.maximum(np.take_along_axis(sim, order, axis=1), 0.0)


def neighbour_mean(sim: np.ndarray, values: np.ndarray, k: int, *, shrink: float = 0.0,
                   order: np.ndarray | None = None) -> np.ndarray:
    """Per row, the max(sim, 0)-weighted mean of `values` over its k most similar non-NaN
    entries: sum(w v) / (sum(w) + shrink); 0 where the denominator is 0.

    The k are taken in decreasing similarity, ties by position (`neighbour_order`, or `order`
    when already computed; the gnn, which reads the same rows every epoch, orders them once and
    calls `sorted_neighbour_mean`). Hand-written because
    scikit-learn's neighbour models cannot skip the NaN (unknown) entries per row. Each row is
    computed on its own (no value depends on another row).

    Shapes: sim, values, order [P, N] -> [P].
    """
    if k == 0 or sim.shape[1] == 0:
        return np.zeros(len(sim))
    order = neighbour_order(sim) if order is None else order
    return sorted_neighbour_mean(np.take_along_axis(values, order, axis=1),
                                 neighbour_weight(sim, order), k, shrink=shrink)


def sorted_neighbour_mean(value: np.ndarray, weight: np.ndarray, k: int, *,
                          shrink: float = 0.0) -> np.ndarray:
    """`neighbour_mean` of values and weights already in neighbour order (`neighbour_order`,
    `neighbour_weight`), as the gnn gathers them every epoch from orders computed once.

    Shapes: value, weight [P, N] -> [P].
    """
    out = np.zeros(len(value))
    if k == 0 or value.shape[1] == 0:
        return out
    known = ~np.isnan(value)
    take = known & (np.cumsum(known, axis=1) <= k)                        # first k known
    weight = np.where(take, weight, 0.0)
    total = weight.sum(1) + shrink
    return np.divide((weight * np.where(take, value, 0.0)).sum(1), total, out=out,
                     where=total > 0)


def neighbour_level(value: np.ndarray, known: np.ndarray, order: np.ndarray,
                    weight: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's `sorted_neighbour_mean` of node values over its first k `known` neighbours
    (`knn`'s level of a new node when the values are node effects), and whether any of them
    weighs more than 0 (where not, the mean is 0 and means nothing).

    The weights are max(similarity, 0) in decreasing order of similarity, so the k known
    neighbours averaged are the heaviest known ones: the mean has weight iff some known
    neighbour has.

    Shapes: value, known [N]; order, weight [R, N] (rows in neighbour order) -> [R], [R] bool.
    """
    known_row = known[order]                                                # [R, N]
    level = sorted_neighbour_mean(np.where(known_row, value[order], np.nan), weight, k)
    return level, (known_row & (weight > 0)).any(1)


def residual_table(src: np.ndarray, dst: np.ndarray, residual: np.ndarray, num_models: int,
                   num_datasets: int) -> np.ndarray:
    """Residuals of known pairs as a models × datasets table, NaN where no pair is known.

    Shapes: src, dst, residual [E] -> [num_models, num_datasets].
    """
    table = np.full((num_models, num_datasets), np.nan)
    table[src, dst] = residual
    return table


def neighbour_residuals(table: np.ndarray, model_pos: np.ndarray, dataset_pos: np.ndarray,
                        dataset_sim: np.ndarray | None, model_sim: np.ndarray | None, k: int,
                        *, shrink: float = 0.0) -> np.ndarray:
    """The two neighbour residuals of each pair (m, d).

    Column 0: `neighbour_mean` of row m of `table` (m's residuals on every dataset) weighted by
    d's similarity to those datasets, i.e. m's residual on the k datasets most like d where m has
    one. Column 1: the same over the models most like m that have a residual on d. A column is 0
    where its position is -1 (a node without a row/column in `table`) or its similarity is None.

    Args:
        table: residuals [M, D], NaN where unknown (`residual_table`).
        model_pos, dataset_pos: each pair's row and column in `table` [P] (-1: none).
        dataset_sim: each pair's dataset's similarity to the table's datasets [P, D].
        model_sim: each pair's model's similarity to the table's models [P, M].
        k, shrink: as in `neighbour_mean`.

    Shapes: -> [P, 2].
    """
    out = np.zeros((len(model_pos), 2))
    if dataset_sim is not None:
        rows = model_pos >= 0
        out[rows, 0] = neighbour_mean(dataset_sim[rows], table[model_pos[rows]], k,
                                      shrink=shrink)
    if model_sim is not None:
        rows = dataset_pos >= 0
        out[rows, 1] = neighbour_mean(model_sim[rows], table[:, dataset_pos[rows]].T, k,
                                      shrink=shrink)
    return out
