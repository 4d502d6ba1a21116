"""Sparse neighbour means equal the dense ones (`tpred.models.neighbours`) without the dense
matrices: random sparse tables, exact ties, self exclusion, tiny blocks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import tpred.models.sparse_neighbours as sn
from tpred.models.neighbours import (
    cosine_similarity,
    neighbour_mean,
    neighbour_residuals,
    residual_table,
    self_excluded_similarity,
)
from tpred.models.sparse_neighbours import (
    Similarity,
    blocked_neighbour_mean,
    candidate_neighbour_mean,
)


@pytest.fixture(autouse=True, params=["whole", "pair by pair"])
def similarity_path(request, monkeypatch):
    """Every test runs with the small-zoo path (the whole similarity computed once) and with the
    large-zoo path (each asked-for pair computed on its own)."""
    if request.param == "pair by pair":
        monkeypatch.setattr(sn, "DENSE_MAX", 0)
    return request.param


def test_whole_and_pair_by_pair_similarities_are_equal(similarity_path):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    scores = sp.random(6, 9, density=0.4, random_state=3, format="csr")
    sim = Similarity([x, scores], [y, scores], same_nodes=True)
    assert (sim._dense is None) == (similarity_path == "pair by pair")
    a, b = np.repeat(np.arange(6), 6), np.tile(np.arange(6), 6)
    def unit(m):
        return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-300)
    dense = scores.toarray()
    want = (unit(x) @ unit(y).T + unit(dense) @ unit(dense).T) / 2
    np.fill_diagonal(want, -np.inf)
    np.testing.assert_allclose(sim.pairs(a, b), want[a, b], rtol=0, atol=1e-12)


def stable_top_k_mean(sim, values, k, shrink=0.0):
    """Reference: per row, the k most similar non-NaN entries by a stable sort (ties: lowest
    position, also at the k-th place, where the dense `neighbour_mean` takes argpartition's
    choice), weights max(sim, 0)."""
    out = np.zeros(len(sim))
    for i, (s, v) in enumerate(zip(sim, values, strict=True)):
        order = np.argsort(-np.where(np.isnan(v), -np.inf, s), kind="stable")[:k]
        order = order[~np.isnan(v[order])]
        w = np.maximum(s[order], 0.0)
        if w.sum() + shrink > 0:
            out[i] = (w * v[order]).sum() / (w.sum() + shrink)
    return out


def random_cells(rng, num_m, num_d, density):
    cells = np.flatnonzero(rng.random(num_m * num_d) < density)
    return cells // num_d, cells % num_d, rng.normal(size=len(cells))


@pytest.mark.parametrize("block", [sn.BLOCK, 7])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_candidate_mean_equals_the_dense_neighbour_residuals(monkeypatch, seed, block):
    monkeypatch.setattr(sn, "BLOCK", block)  # 7: many blocks, some with one query
    rng = np.random.default_rng(seed)
    num_m, num_d, num_q = 9, 14, 30
    rows, cols, resid = random_cells(rng, num_m, num_d, 0.4)
    # continuous features with repeated rows: exact ties between identical datasets (equal
    # cosines of different vectors may round differently in the dense and the sparse sums)
    xd = rng.normal(size=(num_d, 3))
    xd[1::3] = xd[0]
    xq = np.concatenate([xd[:5], rng.normal(size=(num_q - 5, 3))])
    sparse_scores = sp.random(num_d, 5, density=0.5, random_state=seed, format="lil")
    sparse_scores[1::3] = sparse_scores[0]
    sparse_scores = sparse_scores.tocsr()
    query_scores = sp.vstack([sparse_scores[:5],
                              sp.random(num_q - 5, 5, density=0.5, random_state=seed + 9)]).tocsr()
    sim = Similarity([xq, query_scores], [xd, sparse_scores])
    dense_sim = (cosine_similarity(xq, xd) + cosine_similarity(query_scores.toarray(),
                                                               sparse_scores.toarray())) / 2
    q_model = rng.integers(-1, num_m, size=num_q)
    table = residual_table(rows, cols, resid, num_m, num_d)
    for k in (1, 3, 20):
        got = candidate_neighbour_mean(q_model, np.arange(num_q), rows, cols, resid, num_m,
                                       sim, k, shrink=0.5)
        rows_of = np.where(q_model[:, None] >= 0, table[np.maximum(q_model, 0)], np.nan)
        np.testing.assert_allclose(got, stable_top_k_mean(dense_sim, rows_of, k, 0.5),
                                   atol=1e-12)


def test_equals_the_dense_neighbour_residuals_without_ties():
    rng = np.random.default_rng(5)
    rows, cols, resid = random_cells(rng, 7, 11, 0.5)
    xd, xq = rng.normal(size=(11, 4)), rng.normal(size=(25, 4))
    q_model = rng.integers(-1, 7, size=25)
    got = candidate_neighbour_mean(q_model, np.arange(25), rows, cols, resid, 7,
                                   Similarity([xq], [xd]), 3, shrink=1.0)
    want = neighbour_residuals(residual_table(rows, cols, resid, 7, 11), q_model,
                               np.full(25, -1), cosine_similarity(xq, xd), None, 3,
                               shrink=1.0)[:, 0]
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_same_nodes_are_never_their_own_neighbour():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(12, 4))
    rows, cols, resid = random_cells(rng, 5, 12, 0.6)                      # models x datasets
    q_model, q_data = rng.integers(0, 5, size=20), rng.integers(0, 12, size=20)
    got = candidate_neighbour_mean(q_model, q_data, rows, cols, resid, 5,
                                   Similarity([x], [x], same_nodes=True), 2, shrink=1.0)
    table = residual_table(rows, cols, resid, 5, 12)
    want = neighbour_residuals(table, q_model, np.full(20, -1),
                               self_excluded_similarity(x)[q_data], None, 2, shrink=1.0)[:, 0]
    np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize("block", [sn.BLOCK, 5])
def test_blocked_mean_equals_the_dense_neighbour_mean(monkeypatch, block):
    monkeypatch.setattr(sn, "BLOCK", block)
    rng = np.random.default_rng(4)
    ref, query = rng.integers(0, 2, size=(10, 3)).astype(float), rng.normal(size=(6, 3))
    values = rng.normal(size=10)
    got = blocked_neighbour_mean(np.arange(6), Similarity([query], [ref]), values, 3)
    dense = cosine_similarity(query, ref)
    # block by block, the dense `neighbour_mean` itself (ties included)
    np.testing.assert_allclose(got, neighbour_mean(dense, np.broadcast_to(values, dense.shape),
                                                   3), atol=1e-12)
    continuous = rng.normal(size=(10, 3))
    dense = cosine_similarity(query, continuous)
    np.testing.assert_allclose(
        blocked_neighbour_mean(np.arange(6), Similarity([query], [continuous]), values, 3),
        neighbour_mean(dense, np.broadcast_to(values, dense.shape), 3), atol=1e-12)


def test_empty_inputs_and_featureless_similarity_give_zeros():
    sim = Similarity([np.zeros((3, 0))], [np.zeros((4, 0))])
    assert sim.pairs(np.array([0, 2]), np.array([1, 3])).tolist() == [0.0, 0.0]
    assert sim.block(np.array([1])).shape == (1, 4)
    none = np.zeros(0, dtype=np.int64)
    assert candidate_neighbour_mean(np.array([0, -1]), np.array([0, 1]), none, none,
                                    np.zeros(0), 2, sim, 3).tolist() == [0.0, 0.0]
    assert blocked_neighbour_mean(none, sim, np.zeros(4), 3).shape == (0,)


@pytest.mark.parametrize("sparse", [False, True])
def test_similarity_treats_round_off_rows_as_zero_as_the_dense_cosine(sparse):
    from tpred.models.neighbours import cosine_similarity
    x = np.array([[1.0, 0.0, 2.0], [3e-17, -2e-17, 1e-17], [0.0, 1.0, 1.0], [1e-6, 0.0, 1e-6]])
    rep = sp.csr_matrix(x) if sparse else x
    sim = Similarity([rep], [rep]).block(np.arange(4))
    np.testing.assert_allclose(sim, cosine_similarity(x, x), atol=1e-12)
    np.testing.assert_array_equal(sim[1], np.zeros(4))
