"""`mf`: additive + low-rank completion of the models x datasets table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tpred.data.zoo import Zoo
from tpred.errors import NotFittedError
from tpred.models.additive import AdditivePredictor
from tpred.models.mf import REG_GRID, MatrixFactorizationPredictor

HIDDEN = {(0, 3), (2, 0), (4, 6), (1, 5), (3, 1)}


def _table(rng: np.random.Generator) -> np.ndarray:
    """5 x 7 accuracies = 0.6 + a_i + b_j + u_i v_j exactly (additive + rank 1), inside [0, 1]."""
    a, b = rng.uniform(-0.1, 0.1, 5), rng.uniform(-0.1, 0.1, 7)
    u, v = rng.uniform(-0.4, 0.4, 5), rng.uniform(-0.4, 0.4, 7)
    return 0.6 + a[:, None] + b[None, :] + np.outer(u, v)                 # [5, 7]


def _zoo(acc: np.ndarray, hidden=frozenset()) -> Zoo:
    rows = [(f"m{i}", f"d{j}", acc[i, j]) for i in range(acc.shape[0])
            for j in range(acc.shape[1]) if (i, j) not in hidden]
    return Zoo.from_records(pd.DataFrame(rows, columns=["model", "dataset", "accuracy"]))


def _pairs(cells) -> pd.DataFrame:
    return pd.DataFrame({"model": [f"m{i}" for i, _ in cells],
                         "dataset": [f"d{j}" for _, j in cells]})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mf_recovers_an_exactly_rank_one_plus_additive_table(seed):
    acc = _table(np.random.default_rng(seed))
    zoo = _zoo(acc, HIDDEN)
    cells = sorted(HIDDEN)
    truth = np.array([acc[c] for c in cells])
    mf = MatrixFactorizationPredictor(rank=1, reg=1e-8, num_iters=2000).fit(zoo, zoo.known_pairs())
    np.testing.assert_allclose(mf.predict(_pairs(cells)), truth, atol=1e-3)
    np.testing.assert_allclose(mf.predict(zoo.known_pairs()), zoo.records["accuracy"], atol=1e-3)
    # the interaction is real: the additive baseline misses it
    additive = AdditivePredictor().fit(zoo, zoo.known_pairs()).predict(_pairs(cells))
    assert np.abs(additive - truth).max() > 0.01


def test_mf_default_settings_beat_additive_on_a_rank_one_table():
    acc = _table(np.random.default_rng(3))
    zoo = _zoo(acc, HIDDEN)
    cells = _pairs(sorted(HIDDEN))
    truth = np.array([acc[c] for c in sorted(HIDDEN)])
    mf = MatrixFactorizationPredictor().fit(zoo, zoo.known_pairs()).predict(cells)
    additive = AdditivePredictor().fit(zoo, zoo.known_pairs()).predict(cells)
    assert np.abs(mf - truth).mean() < np.abs(additive - truth).mean()


def test_mf_is_additive_on_an_exactly_additive_table_with_a_cold_dataset():
    acc = 0.5 + 0.1 * np.arange(3)[:, None] - 0.05 * np.arange(4)[None, :]  # [3, 4]
    zoo = _zoo(acc, {(0, 3), (1, 3), (2, 3), (2, 0)})  # d3 has no record at all
    pairs = _pairs([(0, 3), (1, 3), (2, 3), (2, 0)])
    mf = MatrixFactorizationPredictor().fit(zoo, zoo.known_pairs())
    additive = AdditivePredictor(num_iters=200).fit(zoo, zoo.known_pairs())
    np.testing.assert_allclose(mf.predict(pairs), additive.predict(pairs), atol=1e-6)
    np.testing.assert_allclose(mf.predict(pairs)[3], 0.70, atol=1e-6)


def test_mf_new_ids_get_effect_and_factor_zero():
    zoo = _zoo(_table(np.random.default_rng(0)), HIDDEN)
    mf = MatrixFactorizationPredictor().fit(zoo, zoo.known_pairs())
    pairs = pd.DataFrame({"model": ["new", "m1", "new"], "dataset": ["new", "new", "d2"]})
    np.testing.assert_allclose(mf.predict(pairs),  # ids in no zoo at all: no metadata needed
                               [mf.mu_, mf.mu_ + mf.model_effect_["m1"],
                                mf.mu_ + mf.dataset_effect_["d2"]])
    assert mf.mu_ == pytest.approx(zoo.records["accuracy"].mean())


def test_mf_is_deterministic_for_a_random_state():
    zoo = _zoo(_table(np.random.default_rng(0)), HIDDEN)
    runs = [MatrixFactorizationPredictor(random_state=4).fit(zoo, zoo.known_pairs())
            .predict(_pairs(sorted(HIDDEN))) for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"rank": 0}, "rank must be >= 1"), ({"reg": 0.0}, "reg must be > 0 or None"),
    ({"num_iters": 0}, "num_iters must be >= 1"),
    ({"val_fraction": 1.0}, r"val_fraction must be in \(0, 1\)")])
def test_mf_rejects_bad_hyper_parameters(kwargs, match):
    zoo = _zoo(_table(np.random.default_rng(0)))
    with pytest.raises(ValueError, match=match):
        MatrixFactorizationPredictor(**kwargs).fit(zoo, zoo.known_pairs())


def test_mf_predict_before_fit_raises():
    with pytest.raises(NotFittedError, match="MatrixFactorizationPredictor is not fitted"):
        MatrixFactorizationPredictor().predict(_pairs([(0, 0)]))


def _sparse_zoo(seed: int, rank_one: bool) -> Zoo:
    """10 x 40, half the cells known: additive + noise, or additive + an exact rank-1 term."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, 0.05, 10), rng.normal(0, 0.05, 40)
    extra = (np.outer(rng.uniform(-0.4, 0.4, 10), rng.uniform(-0.4, 0.4, 40)) if rank_one
             else rng.normal(0, 0.03, (10, 40)))
    acc = 0.6 + a[:, None] + b + extra
    return _zoo(acc, {(i, j) for i in range(10) for j in range(40) if rng.random() < 0.5})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mf_chooses_a_strong_ridge_for_noise_and_a_weak_one_for_a_low_rank_table(seed):
    noisy, exact = _sparse_zoo(seed, False), _sparse_zoo(seed, True)
    noise = MatrixFactorizationPredictor().fit(noisy, noisy.known_pairs())
    low_rank = MatrixFactorizationPredictor().fit(exact, exact.known_pairs())
    assert noise.reg_ >= 3 and low_rank.reg_ <= 1
    assert noise.reg_ in REG_GRID and set(noise.val_errors_) == set(REG_GRID)


def test_mf_final_fit_with_the_chosen_ridge_uses_every_training_pair():
    zoo = _sparse_zoo(0, True)
    auto = MatrixFactorizationPredictor().fit(zoo, zoo.known_pairs())
    fixed = MatrixFactorizationPredictor(reg=auto.reg_).fit(zoo, zoo.known_pairs())
    pairs = zoo.all_pairs()
    np.testing.assert_array_equal(auto.predict(pairs), fixed.predict(pairs))
