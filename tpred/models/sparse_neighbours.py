"""Neighbour means that never build a dense nodes × nodes or models × datasets matrix.

The dense forms in `tpred.models.neighbours` take a similarity matrix [P, N] and a residual
table [M, D] with NaN where no record is known. On a zoo of 10^4 models × 10^5 datasets both are
far beyond memory (a D × D float64 similarity alone is 80 GB) while the records are few (10^6).
The functions here compute the same quantities from the records themselves:

- `Similarity`: cosine similarity between query nodes and reference nodes, as the mean of the
  cosines of one or more representations (dense node features, sparse score vectors), evaluated
  only for the (query, reference) index pairs asked for (`pairs`), or block by block
  (`blocks`), never all at once.
- `candidate_neighbour_mean`: for each query (node n, other o), the candidates are the records
  of n (their other ends and residuals, a CSR-like grouping); the k candidates most similar to o
  give the weighted mean, exactly as `neighbour_mean` over a dense row with NaN where n has no
  record. Work and memory: the number of candidates (sum of the queried nodes' degrees), in
  blocks of `BLOCK` candidates.
- `blocked_neighbour_mean`: for each query node, the weighted mean of a value over its k most
  similar reference nodes (all of them candidates), over blocks of queries so a block's
  similarity [B, N] stays under `BLOCK` entries.

Hand-written because scikit-learn's neighbour search cannot restrict each query to its own
candidate set (the nodes with a record). Results equal the dense code's up to round-off
(`tests/models/test_sparse_neighbours`), with one difference in `candidate_neighbour_mean`:
exactly tied candidates at the k-th place go to the lowest position (a stable sort), where the
dense `neighbour_mean` keeps whichever `np.argpartition` picked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from tpred.models.neighbours import (
    neighbour_mean,
    neighbour_order,
    zero_round_off_rows,
)

#: entries per block: candidate pairs (`candidate_neighbour_mean`) or similarity entries
#: (`blocked_neighbour_mean`); 2^19 float64 entries are 4 MB per array. A block of candidates
#: holds about ten such arrays plus the sparse rows `Similarity.pairs` gathers: on 40,000
#: datasets knn's predict traced a 300 MB peak with 2^21, 180 MB with 2^19
#: (tests/models/test_gnn_minibatch.py holds all methods under 256 MB there).
BLOCK = 2**19
#: a similarity of at most this many entries (8 MB of float64) is computed whole, once
DENSE_MAX = 2**20


@dataclass
class Similarity:
    """Cosine similarity of query rows to reference rows, averaged over representations.

    Args:
        query: per representation, the query nodes' vectors [Q, F_i] (dense or scipy sparse).
        reference: per representation, the reference nodes' vectors [N, F_i].
        same_nodes: query row i and reference row i are the same node, which is never its own
            neighbour (similarity -inf, as `self_excluded_similarity`).

    A representation with no columns is skipped (as `knn` does); with none left every
    similarity is 0. Rows are L2-normalised once (a zero row, or one of round-off norm, stays
    zero: similar to nothing).
    """

    query: Sequence[np.ndarray | sp.spmatrix]
    reference: Sequence[np.ndarray | sp.spmatrix]
    same_nodes: bool = False

    def __post_init__(self) -> None:
        kept = [(q, r) for q, r in zip(self.query, self.reference, strict=True) if r.shape[1]]
        # a row of round-off norm is zero (`neighbours.ZERO_ROW_TOLERANCE`), as in the dense path
        self._q, self._r = [], []
        for q, r in kept:
            q, r = zero_round_off_rows(q, r)
            self._q.append(_unit_rows(q))
            self._r.append(_unit_rows(r))
        self.num_reference = self.reference[0].shape[0] if self.reference else 0
        num_query = self.query[0].shape[0] if self.query else 0
        # a small zoo's whole similarity is cheaper to compute once than to gather pair by pair
        # (row gathers of sparse score vectors dominated knn on a 20 x 200 zoo)
        self._dense = (self.block(np.arange(num_query))
                       if num_query * self.num_reference <= DENSE_MAX else None)

    def pairs(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Similarity of query a[i] to reference b[i] [len(a)] (computed in this call only,
        or read from the whole matrix when it is at most `DENSE_MAX` entries)."""
        if self._dense is not None:
            return self._dense[a, b]
        out = np.zeros(len(a))
        for q, r in zip(self._q, self._r, strict=True):
            if sp.issparse(q):
                out += np.asarray(q[a].multiply(r[b]).sum(axis=1)).ravel()
            else:
                out += np.einsum("ij,ij->i", q[a], r[b])
        if self._q:
            out /= len(self._q)
        if self.same_nodes:
            out[a == b] = -np.inf
        return out

    def block(self, rows: np.ndarray) -> np.ndarray:
        """Similarity of query rows `rows` to every reference node [len(rows), N]."""
        out = np.zeros((len(rows), self.num_reference))
        for q, r in zip(self._q, self._r, strict=True):
            prod = q[rows] @ r.T
            out += prod.toarray() if sp.issparse(prod) else prod
        if self._q:
            out /= len(self._q)
        if self.same_nodes:
            out[np.arange(len(rows)), rows] = -np.inf
        return out


def _unit_rows(x: np.ndarray | sp.spmatrix) -> np.ndarray | sp.csr_matrix:
    if sp.issparse(x):
        return normalize(sp.csr_matrix(x, dtype=np.float64))
    return normalize(np.asarray(x, dtype=np.float64))


def candidate_neighbour_mean(query_node: np.ndarray, query_other: np.ndarray,
                             edge_node: np.ndarray, edge_other: np.ndarray,
                             edge_value: np.ndarray, num_nodes: int, similarity: Similarity,
                             k: int, *, shrink: float = 0.0) -> np.ndarray:
    """For each query (n, o): the weighted mean of n's record values over the k records whose
    other end is most similar to o.

    Equal (up to round-off) to `neighbour_mean(sim[o], table[n], k, shrink)` with `table` the
    dense [num_nodes, N] table of `edge_value` (NaN elsewhere) and `sim` the dense similarity:
    weights max(sim, 0), ties broken by the other end's position, sum(w v) / (sum(w) + shrink),
    0 where that denominator is 0 or n has no record. A query with n = -1 gets 0.

    Args:
        query_node, query_other: per query, the node whose records are averaged (row of the
            table, -1: none) and the query row of `similarity` they are compared with [Q].
        edge_node, edge_other, edge_value: the records: node, other end (reference row of
            `similarity`), value [E]; at most one record per (node, other).
        num_nodes: number of table rows.
        similarity: similarity of query rows to reference rows (`Similarity.pairs`).
        k, shrink: as in `neighbour_mean`.

    Shapes: -> [Q].
    """
    out = np.zeros(len(query_node))
    if k <= 0 or len(edge_node) == 0 or len(query_node) == 0:
        return out
    order = np.lexsort((edge_other, edge_node))            # records grouped by node, other asc
    e_other, e_value = edge_other[order], edge_value[order]
    start = np.concatenate([[0], np.cumsum(np.bincount(edge_node, minlength=num_nodes))])
    node = np.where(query_node >= 0, query_node, 0)
    deg = np.where(query_node >= 0, start[node + 1] - start[node], 0)          # [Q]
    bounds = np.concatenate([[0], np.cumsum(deg)])
    lo = 0
    while lo < len(query_node):  # blocks of whole queries with at most BLOCK candidates
        hi = max(int(np.searchsorted(bounds, bounds[lo] + BLOCK, side="right")) - 1, lo + 1)
        q = np.arange(lo, hi)
        counts = deg[q]
        total = int(counts.sum())
        if total:
            owner = np.repeat(q, counts)                                       # [T] query
            offset = np.arange(total) - np.repeat(bounds[q] - bounds[lo], counts)
            cand = start[node[owner]] + offset                                 # [T] record
            other = e_other[cand]
            sim = similarity.pairs(query_other[owner], other)                  # [T]
            # rank within each query: similarity descending, ties by position (other asc)
            rank_order = np.lexsort((other, -sim, owner))
            owner_s = owner[rank_order]
            first = np.searchsorted(owner_s, owner_s, side="left")
            top = rank_order[(np.arange(total) - first) < k]
            weight = np.maximum(sim[top], 0.0)
            num = np.bincount(owner[top] - lo, weight * e_value[cand[top]], minlength=hi - lo)
            den = np.bincount(owner[top] - lo, weight, minlength=hi - lo) + shrink
            np.divide(num, den, out=out[lo:hi], where=den > 0)
        lo = hi
    return out


def blocked_neighbour_mean(rows: np.ndarray, similarity: Similarity, values: np.ndarray,
                           k: int) -> np.ndarray:
    """For each query row: `neighbour_mean` of `values` over its k most similar reference nodes.

    `values` [N] is the same for every query (e.g. the training nodes' effects); [N, C] gives
    the C means over the same neighbours, each block's similarity computed and ordered once
    (e.g. the mean and the mean square of a weighted std). The similarity is computed in
    blocks of at most `BLOCK` entries, so memory stays O(BLOCK).

    Shapes: rows [Q], values [N] -> [Q]; values [N, C] -> [Q, C].
    """
    values = np.asarray(values)
    columns = values.reshape(len(values), -1)                                   # [N, C]
    out = np.zeros((len(rows), columns.shape[1]))
    n = similarity.num_reference
    if n == 0 or len(rows) == 0:
        return out.reshape((len(rows),) + values.shape[1:])
    step = max(1, BLOCK // n)
    for lo in range(0, len(rows), step):
        block = similarity.block(rows[lo:lo + step])                            # [B, N]
        order = neighbour_order(block)
        for c in range(columns.shape[1]):
            out[lo:lo + step, c] = neighbour_mean(
                block, np.broadcast_to(columns[:, c], block.shape), k, order=order)
    return out.reshape((len(rows),) + values.shape[1:])
