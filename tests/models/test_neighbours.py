"""Neighbour residuals shared by `knn` and the gnn: similarities, weighted means, both sides."""

from __future__ import annotations

import numpy as np
import pytest

from tpred.models.neighbours import (
    cosine_similarity,
    neighbour_level,
    neighbour_mean,
    neighbour_order,
    neighbour_residuals,
    neighbour_weight,
    residual_table,
    self_excluded_similarity,
)


def test_cosine_similarity_of_zero_rows_and_empty_features():
    a = np.array([[1.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(cosine_similarity(a, np.array([[2.0, 0.0], [0.0, 3.0]])),
                               [[1, 0], [0, 0]])
    assert cosine_similarity(np.zeros((2, 0)), np.zeros((3, 0))).tolist() == [[0.0] * 3] * 2


def test_self_excluded_similarity_is_cosine_and_never_the_node_itself():
    x = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    sim = self_excluded_similarity(x)
    assert np.isneginf(np.diag(sim)).all()
    assert sim[0, 1] == pytest.approx(1 / np.sqrt(2)) and sim[0, 2] == pytest.approx(0.0)
    assert self_excluded_similarity(np.zeros((3, 0))) is None


def test_neighbour_mean_by_hand():
    sim = np.array([[0.9, 0.5, -0.2, 0.8],
                    [0.1, 0.3, 0.2, -np.inf]])                 # -inf: the node itself
    values = np.array([[0.10, -0.20, 0.40, np.nan],              # NaN: no record
                       [0.30, 0.60, -0.10, 0.50]])
    out = neighbour_mean(sim, values, k=2, shrink=1.0)
    # row 0: the 2 most similar with a value are 0.9 (0.10) and 0.5 (-0.20)
    # row 1: 0.3 (0.60) and 0.2 (-0.10); the node itself is never picked
    np.testing.assert_allclose(out, [(0.9 * 0.10 + 0.5 * -0.20) / (1.4 + 1.0),
                                     (0.3 * 0.60 + 0.2 * -0.10) / (0.5 + 1.0)])
    # no shrinkage: the plain weighted mean
    np.testing.assert_allclose(neighbour_mean(sim[:1], values[:1], k=2),
                               [(0.9 * 0.10 + 0.5 * -0.20) / 1.4])
    # negative similarity weighs 0, and a row without any value gives 0
    np.testing.assert_allclose(
        neighbour_mean(np.array([[-0.5, -0.1]]), np.array([[0.3, 0.2]]), k=2), [0.0])
    np.testing.assert_allclose(
        neighbour_mean(np.array([[0.5, 0.1]]), np.full((1, 2), np.nan), k=5), [0.0])


def test_neighbour_mean_breaks_ties_by_position():
    sim = np.array([[0.5, 0.5, 0.5]])
    np.testing.assert_allclose(neighbour_mean(sim, np.array([[1.0, 2.0, 4.0]]), k=2), [1.5])


def test_neighbour_residuals_by_hand():
    # 2 models x 3 datasets; m0 has no residual on d2, m1 none on d0
    table = residual_table(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 2]),
                           np.array([0.1, -0.2, 0.3, 0.4]), 2, 3)
    assert np.isnan(table[0, 2]) and np.isnan(table[1, 0]) and table[1, 2] == 0.4
    # pair 0: (m0, a dataset like d0 and d1); pair 1: a new model (-1) like m1 on d1
    dataset_sim = np.array([[0.8, 0.2, 0.9], [0.0, 0.0, 0.0]])             # [P, D]
    model_sim = np.array([[0.5, 0.5], [0.25, 0.75]])                       # [P, M]
    out = neighbour_residuals(table, np.array([0, -1]), np.array([-1, 1]), dataset_sim,
                              model_sim, 2)
    np.testing.assert_allclose(out, [[(0.8 * 0.1 + 0.2 * -0.2) / 1.0, 0.0],
                                     [0.0, (0.25 * -0.2 + 0.75 * 0.3) / 1.0]])
    # no similarity for a side: that column is 0
    none = neighbour_residuals(table, np.array([0, 1]), np.array([1, 1]), None, model_sim, 2)
    assert (none[:, 0] == 0).all() and (none[:, 1] != 0).all()


def test_neighbour_mean_with_a_precomputed_order_is_the_same():
    rng = np.random.default_rng(0)
    sim = rng.normal(size=(6, 9))
    sim[np.arange(6), np.arange(6)] = -np.inf
    values = np.where(rng.random((6, 9)) < 0.3, np.nan, rng.normal(size=(6, 9)))
    for k in (0, 1, 3, 20):
        np.testing.assert_array_equal(
            neighbour_mean(sim, values, k, shrink=1.0, order=neighbour_order(sim)),
            neighbour_mean(sim, values, k, shrink=1.0))


def test_neighbour_level_averages_the_k_most_similar_known_nodes_by_hand():
    sim = np.array([[-np.inf, 0.9, 0.5, 0.7],
                    [0.9, -np.inf, -0.1, -0.2],
                    [0.5, -0.1, -np.inf, 0.3],
                    [0.7, -0.2, 0.3, -np.inf]])
    order = neighbour_order(sim)
    value = np.array([0.3, 0.1, -0.2, 0.05])
    known = np.array([False, False, True, True])                 # nodes 2 and 3 have edges
    level, has = neighbour_level(value, known, order, neighbour_weight(sim, order), k=1)
    # node 0: its most similar known node is 3 (0.7); node 1: 2 and 3 weigh 0 (negative
    # cosine), so no level; node 2: node 3 (0.3); node 3: node 2 (0.3)
    np.testing.assert_allclose(level, [0.05, 0.0, 0.05, -0.2])
    np.testing.assert_array_equal(has, [True, False, True, True])
    level2, _ = neighbour_level(value, known, order[:1], neighbour_weight(sim, order)[:1], k=2)
    np.testing.assert_allclose(level2, [(0.7 * 0.05 + 0.5 * -0.2) / 1.2])   # rows: a subset


def test_cosine_treats_round_off_rows_as_zero():
    """A row of round-off norm (centred features equal to the mean up to float error) is
    similar to nothing, as a zero row is, instead of a unit vector of noise; a row that is
    merely small (1e-6 of the largest) keeps its direction."""
    from tpred.models.neighbours import ZERO_ROW_TOLERANCE, cosine_similarity
    a = np.array([[1.0, 0.0], [3e-17, -2e-17], [1e-6, 1e-6], [0.0, 0.0]])
    b = np.array([[2.0, 0.0], [0.0, 5.0], [1e-17, 1e-17]])
    sim = cosine_similarity(a, b)
    np.testing.assert_allclose(sim[0], [1.0, 0.0, 0.0])     # b's round-off row: 0
    np.testing.assert_array_equal(sim[1], [0.0, 0.0, 0.0])  # a's round-off row: 0
    np.testing.assert_allclose(sim[2], [np.sqrt(0.5), np.sqrt(0.5), 0.0])
    np.testing.assert_array_equal(sim[3], [0.0, 0.0, 0.0])
    assert 3.6e-17 < ZERO_ROW_TOLERANCE * 5.0 < 1e-6          # the rows above sit either side
