"""The `gnn` predictor: no leakage, determinism, learning, inductive predict, pickling."""

from __future__ import annotations

import pickle
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from tpred.config import GNNConfig, NodeFeatureConfig, TextConfig, TrainConfig
from tpred.data.zoo import Zoo
from tpred.errors import NotFittedError
from tpred.models import make_predictor
from tpred.models.additive import AdditivePredictor
from tpred.models.gnn import EdgeConv, GNNPredictor, baseline, batch, trainer
from tpred.models.gnn.baseline import fit_baseline
from tpred.models.gnn.target import from_target, to_target
from tpred.models.neighbours import (
    neighbour_mean,
    neighbour_order,
    neighbour_weight,
    self_excluded_similarity,
)
from tpred.testing import TOY_DATASET_FEATURES, TOY_MODEL_FEATURES, HashEncoder, toy_zoo

#: small and fast, for tests of structure (a toy fit takes well under a second); a single
#: validation split (the toy zoo is small enough to cross-validate: tested on its own below)
FAST = GNNConfig(hidden_channels=16, heads=2, max_epochs=30, patience=10, num_threads=1,
                 cv_max_records=0)
#: long enough to learn the toy zoo
LEARN = replace(FAST, max_epochs=150, patience=30, ensemble=2)


def _gnn(config: GNNConfig = FAST, seed: int = 0, **kw) -> GNNPredictor:
    return GNNPredictor(config, TOY_MODEL_FEATURES, TOY_DATASET_FEATURES, encoder=HashEncoder(),
                        seed=seed, **kw)


def _split(zoo: Zoo, seed: int = 0, test_fraction: float = 0.3):
    pairs = zoo.known_pairs()
    test = np.random.default_rng(seed).random(len(pairs)) < test_fraction
    return pairs[~test].reset_index(drop=True), pairs[test].reset_index(drop=True)


def _with_records(zoo: Zoo, records: pd.DataFrame) -> Zoo:
    return Zoo.from_frames(zoo.models.reset_index(), zoo.datasets.reset_index(), records,
                           zoo.scores)


def _subzoo(zoo: Zoo, drop_dataset: str) -> Zoo:
    keep = lambda f: f[f["dataset"] != drop_dataset]  # noqa: E731
    return Zoo.from_frames(zoo.models.reset_index(), keep(zoo.datasets.reset_index()),
                           keep(zoo.records), keep(zoo.scores))


@pytest.fixture(scope="module")
def zoo() -> Zoo:
    return toy_zoo(seed=1)                                    # 8 models x 24 datasets


@pytest.fixture(scope="module")
def fitted(zoo):
    train, test = _split(zoo)
    return _gnn(LEARN).fit(zoo, train), train, test


# ------------------------------------------------------------------------------- leakage
def test_test_accuracies_reach_nothing_poisoned_test_records_give_identical_predictions(zoo):
    """Leakage rule 1: graph, features, scalers, baseline and early stopping see train only."""
    train, test = _split(zoo, seed=5)
    rng = np.random.default_rng(0)
    records = zoo.records.copy()
    is_test = pd.MultiIndex.from_frame(records[["model", "dataset"]]).isin(
        pd.MultiIndex.from_frame(test))
    records.loc[is_test, "accuracy"] = rng.random(int(is_test.sum()))  # arbitrary new values
    poisoned = _with_records(zoo, records)
    assert not np.allclose(poisoned.accuracy(test), zoo.accuracy(test))
    clean = _gnn().fit(zoo, train)
    dirty = _gnn().fit(poisoned, train)
    assert np.array_equal(clean.predict(test), dirty.predict(test))
    assert np.array_equal(clean.predict(train), dirty.predict(train))
    assert clean.epochs_ == dirty.epochs_

    # the check can fail: poisoning one *training* record does change the predictions
    records.loc[records.index[~is_test][0], "accuracy"] = 0.0
    changed = _gnn().fit(_with_records(zoo, records), train)
    assert not np.array_equal(clean.predict(test), changed.predict(test))


def test_featurizers_are_fitted_on_training_nodes_only(zoo):
    """Leakage rule 2: a held-out dataset's metadata moves no scaler of the other nodes."""
    held_out = "d4"
    train = zoo.known_pairs().query("dataset != @held_out").reset_index(drop=True)
    datasets = zoo.datasets.reset_index()
    datasets.loc[datasets["dataset"] == held_out, ["num_classes", "train_size"]] = [10**6, 10**9]
    shifted = Zoo.from_frames(zoo.models.reset_index(), datasets, zoo.records, zoo.scores)
    a = _gnn(replace(FAST, max_epochs=1)).fit(zoo, train)
    b = _gnn(replace(FAST, max_epochs=1)).fit(shifted, train)
    others = zoo.dataset_ids != held_out
    np.testing.assert_array_equal(a.dataset_x_[others], b.dataset_x_[others])
    assert not np.array_equal(a.dataset_x_[~others], b.dataset_x_[~others])
    # a refit forgets the previous fit's featurizers
    again = _gnn(replace(FAST, max_epochs=1)).fit(shifted, shifted.known_pairs()).fit(zoo, train)
    np.testing.assert_array_equal(again.dataset_x_, a.dataset_x_)


# --------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_predictions_and_another_seed_differs(zoo):
    train, test = _split(zoo)
    a = _gnn(seed=3).fit(zoo, train).predict(test)
    b = _gnn(seed=3).fit(zoo, train).predict(test)
    c = _gnn(seed=4).fit(zoo, train).predict(test)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_fit_leaves_global_torch_state_alone(zoo):
    train, _ = _split(zoo)
    torch.manual_seed(123)
    expected = torch.rand(3)
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    _gnn(replace(FAST, max_epochs=2)).fit(zoo, train)
    assert torch.equal(torch.rand(3), expected)
    assert torch.get_num_threads() == threads
    assert not torch.are_deterministic_algorithms_enabled()


# ------------------------------------------------------------------------------ learning
def test_tiny_end_to_end_fit_beats_constant_and_additive_predictors(fitted, zoo):
    """toy_zoo has a family x domain interaction that an additive model cannot express."""
    model, train, test = fitted
    truth = zoo.accuracy(test)
    pred = model.predict(test)
    assert pred.shape == (len(test),) and np.all((pred >= 0) & (pred <= 1))
    rmse = np.sqrt(np.mean((pred - truth) ** 2))
    constant = np.sqrt(np.mean((zoo.accuracy(train).mean() - truth) ** 2))
    additive = np.sqrt(np.mean((AdditivePredictor().fit(zoo, train).predict(test) - truth) ** 2))
    assert rmse < 0.6 * constant          # seeds 0-4: 0.30-0.35 (additive: 0.52)
    assert rmse < 0.8 * additive


@pytest.mark.parametrize("conv", ["gat", "gatv2", "sage"])
def test_every_conv_and_a_zoo_without_scores_or_features(conv):
    zoo = toy_zoo(num_models=4, num_datasets=6, with_scores=False)
    train, test = _split(zoo)
    model = GNNPredictor(replace(FAST, conv=conv, max_epochs=3, residual=conv != "sage"),
                         NodeFeatureConfig(), NodeFeatureConfig()).fit(zoo, train)
    pred = model.predict(test)
    assert pred.shape == (len(test),) and np.isfinite(pred).all()


def test_fit_baseline_recovers_an_exactly_additive_table():
    src, dst = np.repeat(np.arange(3), 4), np.tile(np.arange(4), 3)
    acc = 0.5 + 0.1 * src - 0.05 * dst
    keep = ~(((src == 0) & (dst == 3)) | ((src == 2) & (dst == 0)))
    base = fit_baseline(src[keep], dst[keep], acc[keep], 3, 5, fallback_mu=0.0)
    np.testing.assert_allclose(base(np.array([0, 2]), np.array([3, 0])), [0.35, 0.70],
                               atol=1e-6)
    assert base.dataset_effect[4] == 0 and base.dataset_degree[4] == 0  # no edges: effect 0
    empty = fit_baseline(src[:0], dst[:0], acc[:0], 3, 5, fallback_mu=0.4)
    assert empty(np.array([1]), np.array([2])) == pytest.approx(0.4)


def test_fit_baseline_without_a_prior_is_the_additive_predictor(zoo):
    """The gnn's baseline and `additive` share one implementation: equal to the last bit."""
    train, test = _split(zoo, seed=2)
    src = zoo.model_ids.get_indexer(train["model"])
    dst = zoo.dataset_ids.get_indexer(train["dataset"])
    base = fit_baseline(src, dst, zoo.accuracy(train), zoo.num_models, zoo.num_datasets,
                        fallback_mu=0.0)
    expected = AdditivePredictor().fit(zoo, train)
    for pairs in (train, test):
        got = base(zoo.model_ids.get_indexer(pairs["model"]),
                   zoo.dataset_ids.get_indexer(pairs["dataset"]))
        np.testing.assert_array_equal(got, expected.predict(pairs))


@pytest.fixture
def one_model_four_datasets(monkeypatch):
    """One model; datasets d0, d1, d2 with one record each, d3 cold (no record); features x;
    prior ridge 0.5, strength 2. Returns src, dst, acc [3], x [4, 2]."""
    monkeypatch.setattr(baseline, "PRIOR_RIDGE", 0.5)
    monkeypatch.setattr(baseline, "PRIOR_STRENGTH", 2.0)
    return (np.zeros(3, dtype=int), np.array([0, 1, 2]), np.array([0.2, 0.5, 0.5]),
            np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]]))


def test_fit_baseline_shrinks_dataset_effects_toward_a_ridge_prior_on_features(
        one_model_four_datasets):
    src, dst, acc, x = one_model_four_datasets
    base = fit_baseline(src, dst, acc, 1, 4, fallback_mu=0.0, dataset_gram=x @ x.T)
    raw = acc - acc.mean()                                   # one model: effects = centred acc
    # the same prior in primal form: ridge on the seen rows, penalty 0.5 * mean ||x||^2
    xs, level = x[:3], raw.mean()
    alpha = 0.5 * np.mean((xs**2).sum(1))
    w = np.linalg.solve(xs.T @ xs + alpha * np.eye(2), xs.T @ (raw - level))
    prior = level + x @ w
    expected = np.append((1 * raw + 2 * prior[:3]) / 3, prior[3])   # n = 1 per seen dataset
    np.testing.assert_allclose(base.dataset_effect, expected, atol=1e-12)
    assert base.dataset_effect[3] != 0                        # a cold dataset gets its prior


def test_the_prior_averages_the_ridge_with_the_neighbour_level(one_model_four_datasets):
    # the case above, with a neighbour level from a similarity over the 4 datasets
    src, dst, acc, x = one_model_four_datasets
    sim = self_excluded_similarity(x - x.mean(0))
    order = neighbour_order(sim)
    k = 2
    near = baseline.PriorNeighbours(order, neighbour_weight(sim, order), k)
    base = fit_baseline(src, dst, acc, 1, 4, fallback_mu=0.0, dataset_gram=x @ x.T,
                        dataset_neighbours=near)
    ridge = fit_baseline(src, dst, acc, 1, 4, fallback_mu=0.0, dataset_gram=x @ x.T)
    raw = acc - acc.mean()
    ridge_prior = np.append((3 * ridge.dataset_effect[:3] - raw) / 2,    # undo (raw + 2p) / 3
                            ridge.dataset_effect[3])
    # by hand: the k most similar seen datasets (never itself), weights max(cosine, 0)
    expected_prior = ridge_prior.copy()
    for d in range(4):
        cand = [j for j in np.argsort(-sim[d], kind="stable") if j != d and j < 3][:k]
        w = np.maximum(sim[d, cand], 0)
        if w.sum() > 0:
            expected_prior[d] = (ridge_prior[d] + (w @ raw[cand]) / w.sum()) / 2
    expected = np.append((raw + 2 * expected_prior[:3]) / 3, expected_prior[3])
    np.testing.assert_allclose(base.dataset_effect, expected, atol=1e-12)
    assert abs(base.dataset_effect[3] - ridge.dataset_effect[3]) > 1e-3   # the level moved it
    # k = 0 is the kernel ridge alone
    off = fit_baseline(src, dst, acc, 1, 4, fallback_mu=0.0, dataset_gram=x @ x.T,
                       dataset_neighbours=baseline.PriorNeighbours(order, near.weight, 0))
    np.testing.assert_array_equal(off.dataset_effect, ridge.dataset_effect)


# ------------------------------------------------------------------- neighbour residuals
def test_fit_gate_is_least_squares_of_the_residual_on_the_neighbour_terms(monkeypatch):
    monkeypatch.setattr(trainer, "GATE_RIDGE", 0.0)
    rng = np.random.default_rng(0)
    near = rng.normal(size=(50, 2))
    base = rng.normal(size=50)
    y = base + near @ np.array([0.7, -0.3])                  # exactly base + near @ gate
    pair_x = torch.tensor(np.concatenate([rng.normal(size=(50, 3)), near], 1),
                          dtype=torch.float32)
    one = batch.GNNBatch(graph=None, src=torch.zeros(50, dtype=torch.long),
                         dst=torch.zeros(50, dtype=torch.long), pair_x=pair_x,
                         base=torch.tensor(base, dtype=torch.float32),
                         y=torch.tensor(y, dtype=torch.float32), num_gated=2)
    np.testing.assert_allclose(one.gated.numpy(), near.astype(np.float32))
    np.testing.assert_allclose(trainer.fit_gate([one, one]).numpy(), [0.7, -0.3], atol=1e-5)


def test_positive_fit_gate_is_the_ridge_fit_clipped_at_zero_for_orthogonal_terms(monkeypatch):
    # orthogonal columns decouple the ridge fit: w_i = max(0, x_i·r / (x_i·x_i + ridge · P))
    monkeypatch.setattr(trainer, "GATE_RIDGE", 0.01)
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(40, 3)))
    near = q * np.array([3.0, 2.0, 1.0])                       # orthogonal, norms² 9, 4, 1
    resid = near @ np.array([0.5, -0.4, 0.2]) + 0.01 * rng.normal(size=40)
    one = batch.GNNBatch(graph=None, src=torch.zeros(40, dtype=torch.long),
                         dst=torch.zeros(40, dtype=torch.long),
                         pair_x=torch.tensor(near, dtype=torch.float32),
                         base=torch.zeros(40), y=torch.tensor(resid, dtype=torch.float32),
                         num_gated=3)
    ridge = 0.01 * 40
    ls = near.T @ resid / (np.array([9.0, 4.0, 1.0]) + ridge)
    assert ls[1] < 0                                           # the constraint binds
    np.testing.assert_allclose(trainer.fit_gate([one]).numpy(), ls, rtol=1e-4)
    np.testing.assert_allclose(trainer.fit_gate([one], positive=True).numpy(),
                               np.maximum(ls, 0), rtol=1e-4, atol=1e-7)


def _stopping(losses, patience, min_delta):
    """(epoch of the stop or None, 1-based epochs that were a new best) of a loss sequence."""
    stopper, bests = trainer.EarlyStopping(patience, min_delta), []
    for epoch, loss in enumerate(losses, start=1):
        if stopper.update(loss):
            bests.append(epoch)
        if stopper.stop:
            return epoch, bests
    return None, bests


def test_early_stopping_by_hand():
    # min_delta 0: any new best resets the count (epochs 2, 5, 6 are not bests)
    assert _stopping([1.0, 1.0, 0.9, 0.95, 0.97, 0.96], 3, 0.0) == (6, [1, 3])
    # steadily improving by less than 10 %: every epoch is a best, yet it stops after 3
    assert _stopping([1.0, 0.95, 0.92, 0.91, 0.90], 3, 0.1) == (4, [1, 2, 3, 4])
    assert _stopping([1.0, 0.95, 0.92, 0.91, 0.90], 3, 0.0) == (None, [1, 2, 3, 4, 5])
    # 0.85 < 0.9 × 1.0 resets the count; then 0.84 .. 0.82 are under 10 % below 0.85
    assert _stopping([1.0, 0.95, 0.85, 0.84, 0.83, 0.82], 3, 0.1) == (6, [1, 2, 3, 4, 5, 6])
    # a rise after the anchor counts as an epoch without improvement too
    assert _stopping([1.0, 0.85, 1.2, 0.9, 0.8], 2, 0.1) == (4, [1, 2])


def test_validation_every_other_epoch_keeps_only_validated_epochs(zoo):
    train, _ = _split(zoo)
    for seed in range(3):
        model = _gnn(replace(FAST, val_every=2, max_epochs=40), seed=seed).fit(zoo, train)
        assert all(e % 2 == 0 for e in model.epochs_), model.epochs_


def test_cross_validation_folds_partition_the_records_evenly():
    fold = trainer.cross_validation_folds(12, 5, np.random.default_rng(0))
    assert sorted(np.bincount(fold).tolist()) == [2, 2, 2, 3, 3]
    assert not np.array_equal(fold, np.arange(12) % 5)             # shuffled


def test_small_graphs_cross_validate_one_network_per_fold_stopped_together(zoo):
    train, test = _split(zoo)
    cv = replace(FAST, cv_max_records=len(train), cv_folds=3)
    model = _gnn(cv).fit(zoo, train)
    assert len(model.members_) == 3 and len(set(model.epochs_)) == 1, model.epochs_
    mean, std = model.predict(test, return_std=True)
    assert (std > 0).any()
    # the fold networks differ: each misses its own fold
    assert len({tuple(s["neighbour_gate"].tolist()) for s in model.members_}) == 3
    restored = _gnn(cv).restore(zoo, train, model.learned_state())
    np.testing.assert_array_equal(restored.predict(test), mean)
    # deterministic on CPU: the same seed refits the same fold networks; another seed differs
    np.testing.assert_array_equal(_gnn(cv).fit(zoo, train).predict(test), mean)
    assert not np.array_equal(_gnn(cv, seed=1).fit(zoo, train).predict(test), mean)
    assert restored.epochs_ == model.epochs_
    # one record more than the limit: the single validation split, one network
    assert len(_gnn(replace(cv, cv_max_records=len(train) - 1)).fit(zoo, train).members_) == 1
    # fewer than two records per fold: no cross-validation (a fold would validate on nothing)
    few = train.iloc[:5]
    assert len(_gnn(replace(cv, max_epochs=4)).fit(zoo, few).members_) == 1
    assert len(_gnn(replace(cv, max_epochs=4)).fit(zoo, train.iloc[:6]).members_) == 3
    # mini-batches (forced by batch_size) keep a single split, and restore expects as much
    mini = _gnn(replace(cv, batch_size=64, max_epochs=4)).fit(zoo, train)
    assert mini.minibatch_ and len(mini.members_) == 1
    again = _gnn(replace(cv, batch_size=64, max_epochs=4)).restore(zoo, train,
                                                                  mini.learned_state())
    np.testing.assert_array_equal(again.predict(test), mini.predict(test))


def test_cross_validated_training_keeps_the_start_when_training_only_hurts(zoo):
    train, _ = _split(zoo)
    # a step size that wrecks the network: no trained epoch beats the start on the pooled folds
    wreck = replace(FAST, cv_max_records=len(train), cv_folds=3, lr=5.0, weight_decay=0.0)
    model = _gnn(wreck).fit(zoo, train)
    assert model.epochs_ == [0, 0, 0]
    for state in model.members_:  # the start: the decoder's last layer is still zero
        assert not state["decoder.3.weight"].any() and not state["decoder.3.bias"].any()
    assert len({tuple(s["neighbour_gate"].tolist()) for s in model.members_}) == 3


@pytest.mark.parametrize("z", [0.0, 1.0])
def test_shrink_to_start_scales_what_training_added_by_the_held_out_least_squares(zoo, z):
    config = replace(FAST, attention=6)
    model = _gnn(config).fit(zoo, zoo.known_pairs())
    g = model._graph(zoo, zoo.known_pairs(), model.model_x_, model.dataset_x_)
    b = batch.make_batch(g, np.arange(20, len(g.rec_acc)), model._pair_scores(zoo, g),
                         neighbors=10, target=np.arange(20))
    net = model._net()
    net.load_state_dict(model.members_[0])
    net.eval()
    start_gate = torch.linspace(0.3, 0.05, len(net.neighbour_gate))
    start = (b.base + b.gated @ start_gate).double().numpy()
    with torch.no_grad():
        before = net(b).double().numpy()
    d = before - start
    noise = np.random.default_rng(0).normal(scale=0.3 * np.abs(d).mean(), size=len(d))
    y = start + 0.6 * d + noise                         # the corrections carry over at 0.6
    held_out = replace(b, y=torch.tensor(y, dtype=torch.float32))
    # by hand: least squares of r = y - start on d, less z standard errors
    r = held_out.y.double().numpy() - start
    alpha = d @ r / (d @ d)
    alpha -= z * np.sqrt(((r - alpha * d) ** 2).sum() / (len(d) - 1) / (d @ d))
    assert 0 < alpha < 1
    state = trainer.shrink_to_start(net, held_out, start_gate, z)
    with torch.no_grad():
        after = net(b).double().numpy()
    np.testing.assert_allclose(after, start + alpha * d, atol=1e-5)
    np.testing.assert_allclose(state["neighbour_gate"].numpy(),
                               (start_gate + alpha * (model.members_[0]["neighbour_gate"]
                                                      - start_gate)).numpy(), rtol=1e-5)
    # corrections that do not carry over at all: the start itself
    net.load_state_dict(model.members_[0])
    trainer.shrink_to_start(net, replace(b, y=torch.tensor(start - d, dtype=torch.float32)),
                            start_gate, z)
    with torch.no_grad():
        np.testing.assert_allclose(net(b).double().numpy(), start, atol=1e-5)


def test_neighbour_terms_use_message_edges_of_similar_nodes_only(zoo):
    model = _gnn().fit(zoo, zoo.known_pairs())
    g = model._graph(zoo, zoo.known_pairs(), model.model_x_, model.dataset_x_)
    msg = np.arange(len(g.rec_acc))[1:]                      # edge 0 is the queried pair
    m, d = g.rec_src[:1], g.rec_dst[:1]
    resid = np.linspace(-0.1, 0.1, len(msg))
    kernel = g.kernels[0]                                    # default: features only
    table = np.full((len(g.model_index), len(g.dataset_index)), np.nan)
    table[g.rec_src[msg], g.rec_dst[msg]] = resid
    near = batch.neighbour_terms(kernel, table, m, d, 10)
    assert np.isnan(table[m[0], d[0]])                       # its own record is not an input
    shrink = batch.NEIGHBOUR_SHRINK
    np.testing.assert_allclose(near[0], [
        neighbour_mean(kernel.dataset_sim[d], table[m], 10, shrink=shrink)[0],
        neighbour_mean(kernel.model_sim[m], table[:, d].T, 10, shrink=shrink)[0]])
    assert (near != 0).all()
    off = batch.neighbour_terms(kernel, table, m, d, 0)
    assert (off == 0).all()                                  # k = 0: all zeros


# ---------------------------------------------------------------------- ensemble and std
def test_predict_in_the_fitted_zoo_reuses_the_training_graph_unless_a_pair_is_a_record(
        fitted, zoo, monkeypatch):
    model, train, test = fitted
    expected = model.predict(test)
    calls, build = [], model._graph
    monkeypatch.setattr(model, "_graph", lambda *a, **k: calls.append(1) or build(*a, **k))
    np.testing.assert_array_equal(model.predict(test), expected)
    assert calls == []                                  # test pairs: the fitted graph as it is
    model.predict(train.iloc[:2])                       # their own records must leave the graph
    assert calls == [1]
    model.predict(test, zoo)                            # a zoo given: all its records are edges
    assert calls == [1, 1]


def test_ensemble_std(fitted):
    model, _, test = fitted
    mean, std = model.predict(test, return_std=True)
    assert np.array_equal(mean, model.predict(test))
    assert std.shape == (len(test),) and (std > 0).any() and (std >= 0).all()
    np.testing.assert_array_equal(model.predict_std(test), std)


# ----------------------------------------------------------------------------- inductive
def test_predict_embeds_new_datasets_inductively(zoo):
    new = "d17"
    small = _subzoo(zoo, new)
    model = _gnn().fit(small, small.known_pairs())
    query = pd.DataFrame({"model": zoo.model_ids[:3], "dataset": [new] * 3})
    with pytest.raises(ValueError, match=r"dataset 'd17' is not in the zoo's datasets table"):
        model.predict(query)
    # cold: only the new dataset's metadata and scores
    cold_zoo = _with_records(zoo, zoo.records[zoo.records["dataset"] != new])
    cold = model.predict(query, zoo=cold_zoo)
    assert cold.shape == (3,) and np.all((cold >= 0) & (cold <= 1))
    # its other records are message edges; the queried pairs' own records are not
    warm = model.predict(query, zoo=zoo)
    assert not np.allclose(warm, cold)
    records = zoo.records.copy()
    own = (records["dataset"] == new) & records["model"].isin(query["model"])
    records.loc[own, "accuracy"] = 1 - records.loc[own, "accuracy"]
    assert np.array_equal(model.predict(query, zoo=_with_records(zoo, records)), warm)
    # a known pair predicted through an equal zoo gives the fitted zoo's prediction
    pairs = small.known_pairs().iloc[:5]
    np.testing.assert_array_equal(model.predict(pairs, zoo=small), model.predict(pairs))


def test_predict_rejects_a_zoo_without_the_fitted_metrics(fitted):
    model, _, test = fitted
    bare = toy_zoo(seed=1, with_scores=False)
    with pytest.raises(ValueError, match=r"lacks score metric\(s\) \['score_a', 'score_b'\]"):
        model.predict(test, zoo=bare)


# -------------------------------------------------------------------------- persistence
def test_pickle_round_trip_gives_identical_predictions(fitted, zoo):
    model, _, test = fitted
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone.predict(test), model.predict(test))
    np.testing.assert_array_equal(clone.predict(test, zoo=zoo), model.predict(test, zoo=zoo))


# --------------------------------------------------------------------------- contract
def test_registered_factory_builds_from_the_train_config():
    cfg = TrainConfig(gnn=replace(FAST, ensemble=2), model_features=TOY_MODEL_FEATURES,
                      dataset_features=TOY_DATASET_FEATURES,
                      text=TextConfig(encoder="hash", cache_dir=None), score_metrics=("score_a",))
    model = make_predictor("gnn", cfg)
    assert isinstance(model, GNNPredictor)
    assert model.config.ensemble == 2 and model.score_metrics == ("score_a",)
    assert model.dataset_features == TOY_DATASET_FEATURES and model.encoder is not None


def test_errors(zoo):
    with pytest.raises(NotFittedError, match="GNNPredictor is not fitted"):
        _gnn().predict(zoo.known_pairs())
    with pytest.raises(ValueError, match="train_pairs is empty"):
        _gnn().fit(zoo, zoo.known_pairs().iloc[:0])
    with pytest.raises(ValueError, match=r"unknown score metric\(s\) \['nope'\]"):
        _gnn(score_metrics=["nope"]).fit(zoo, zoo.known_pairs())
    with pytest.raises(ValueError, match=r"out_channels \(10\) must be divisible by heads \(3\)"):
        EdgeConv(4, 10, edge_dim=0, heads=3, kind="gat", dropout=0.0)


# ------------------------------------------------------------------------- layer and batch
def _hand_conv(kind: str) -> EdgeConv:
    """A 1 -> 2 channel, 1-head `EdgeConv` with hand-set weights (see the test below)."""
    conv = EdgeConv(1, 2, edge_dim=1, heads=1, kind=kind, dropout=0.0)
    with torch.no_grad():
        conv.lin_src.weight.copy_(torch.tensor([[1.0], [1.0]]))
        conv.lin_dst.weight.copy_(torch.tensor([[-4.0], [-1.0]]))
        conv.lin_edge.weight.copy_(torch.tensor([[0.5], [0.0]]))
        conv.lin_root.weight.copy_(torch.tensor([[2.0], [0.0]]))
        conv.lin_root.bias.copy_(torch.tensor([0.0, 0.1]))
        conv.att.copy_(torch.tensor([[[1.0, -1.0]]]))
    return conv.eval()


@pytest.mark.parametrize("kind", ["gatv2", "sage"])
def test_edge_conv_against_a_hand_computed_case(kind):
    # two source nodes (x = 1, 2) send to one destination node (x = 0.5) over edges with
    # features +1 and -1. Values v = W_s x_j + W_e e: [1.5, 1] and [1.5, 2]; query
    # W_d x_i = [-2, -0.5]; root W_r x_i + b = [1, 0.1].
    x = (torch.tensor([[1.0], [2.0]]), torch.tensor([[0.5]]))
    edge_index = torch.tensor([[0, 1], [0, 0]])
    out = _hand_conv(kind)(x, edge_index, torch.tensor([[1.0], [-1.0]]))
    v = np.array([[1.5, 1.0], [1.5, 2.0]])
    if kind == "sage":                                       # plain mean of the values
        agg = v.mean(0)
    else:  # gatv2: logits a . LeakyReLU(q + v) = [-0.1 - 0.5, -0.1 - 1.5] = [-0.6, -1.6]
        logit = np.array([-0.6, -1.6])
        alpha = np.exp(logit) / np.exp(logit).sum()          # softmax: [0.7311, 0.2689]
        agg = alpha @ v
    np.testing.assert_allclose(out.detach().numpy(), [agg + [1.0, 0.1]], rtol=1e-6)
    if kind == "gatv2":
        np.testing.assert_allclose(out.detach().numpy(), [[2.5, 1.3689414]], rtol=1e-6)


def test_make_batch_is_a_named_batch_of_message_edges_and_queried_pairs(zoo):
    model = _gnn().fit(zoo, zoo.known_pairs())
    g = model._graph(zoo, zoo.known_pairs(), model.model_x_, model.dataset_x_)
    scores = model._pair_scores(zoo, g)
    msg, target = np.arange(0, len(g.rec_acc), 2), np.arange(1, len(g.rec_acc), 2)
    b = batch.make_batch(g, msg, scores, neighbors=5, target=target)
    assert isinstance(b, batch.GNNBatch)
    from tpred.graph import RECORD, REV_RECORD
    assert b.graph[RECORD].edge_index.shape == (2, len(msg))          # only message edges
    assert b.graph[REV_RECORD].edge_index.shape == (2, len(msg))      # and their reverses
    np.testing.assert_array_equal(b.src.numpy(), g.rec_src[target])
    np.testing.assert_array_equal(b.dst.numpy(), g.rec_dst[target])
    np.testing.assert_allclose(b.y.numpy(), g.rec_acc[target].astype(np.float32))
    # two gated terms per kernel: the default features and scores kernels
    assert model._kernel_names() == ["features", "scores"]
    assert b.num_gated == 4 and b.pair_x.shape == (
        len(target), scores.shape[1] + baseline.NUM_BASELINE_TERMS + 4)
    assert torch.equal(b.gated, b.pair_x[:, -4:])
    # the baseline is fitted on the message edges only
    base = fit_baseline(g.rec_src[msg], g.rec_dst[msg], g.rec_acc[msg], zoo.num_models,
                        zoo.num_datasets, fallback_mu=float(g.rec_acc.mean()),
                        model_gram=g.gram["model"], dataset_gram=g.gram["dataset"])
    np.testing.assert_allclose(b.base.numpy(),
                               base(g.rec_src[target], g.rec_dst[target]).astype(np.float32))


def test_optional_gated_terms_and_no_score_edges(zoo):
    """Score-similarity kernels, the zmean term and a graph without score edges all fit; the
    zmean term is `ZMeanPredictor`'s prediction minus the baseline's."""
    from tpred.graph import SCORE
    from tpred.models.zmean import ZMeanPredictor
    # accuracy units (logit_squeeze 0): the scale of the ZMeanPredictor compared with below
    config = replace(FAST, max_epochs=3, neighbor_kernels=("features", "scores",
                                                           "features+scores"),
                     zmean_term=True, score_edges=False, logit_squeeze=0.0)
    train, test = _split(zoo)
    model = _gnn(config).fit(zoo, train)
    assert len(model.members_[0]["neighbour_gate"]) == 7
    pred = model.predict(test)
    assert pred.shape == (len(test),) and np.isfinite(pred).all()
    g = model._graph(zoo, train, model.model_x_, model.dataset_x_)
    assert SCORE not in g.data.edge_types
    b = batch.make_batch(g, np.arange(len(g.rec_acc)), model._pair_scores(zoo, g), neighbors=5,
                         target=np.arange(len(g.rec_acc)))
    expected = ZMeanPredictor().fit(zoo, train).predict(train) - b.base.numpy()
    np.testing.assert_allclose(b.gated[:, -1].numpy(), expected, atol=1e-5)


def test_neighbour_terms_equal_the_dense_neighbour_residuals_bit_for_bit():
    """The gnn's shortcut (the first 4k neighbours, the whole row only where they hold fewer
    than k known residuals) gives exactly `neighbour_residuals` over whole rows, also for rows
    with no known residual at all and rows whose known residuals all lie in the first columns."""
    from tpred.models.neighbours import neighbour_residuals
    rng = np.random.default_rng(3)
    num_m, num_d, k = 9, 70, 5
    table = np.where(rng.random((num_m, num_d)) < 0.3, rng.normal(size=(num_m, num_d)), np.nan)
    table[2] = np.nan                                          # a cold model: nothing known
    kernel = batch.Kernel(*(np.where(np.eye(n, dtype=bool), -np.inf, rng.normal(size=(n, n)))
                            for n in (num_d, num_m)))
    table[4] = np.nan
    table[4, kernel.dataset_order[7, :3]] = 1.0               # only 3 known, all in the head
    src, dst = np.repeat(np.arange(num_m), num_d), np.tile(np.arange(num_d), num_m)
    got = batch.neighbour_terms(kernel, table, src, dst, k)
    want = neighbour_residuals(table, src, dst, kernel.dataset_sim[dst], kernel.model_sim[src],
                               k, shrink=batch.NEIGHBOUR_SHRINK)
    np.testing.assert_array_equal(got, want)


def test_scores_kernel_is_left_out_where_it_would_be_zero():
    """`neighbor_kernels=(features, scores)` on a zoo without score metrics is the network of
    `(features,)`, prediction for prediction; with scores it adds the two score-kernel terms."""
    bare = toy_zoo(with_scores=False)
    train, test = _split(bare)
    both = replace(FAST, neighbor_kernels=("features", "scores"))
    one = replace(FAST, neighbor_kernels=("features",))
    a, b = _gnn(both).fit(bare, train), _gnn(one).fit(bare, train)
    assert a._kernel_names() == ["features"]
    np.testing.assert_array_equal(a.predict(test), b.predict(test))
    scored = toy_zoo()
    model = _gnn(replace(both, max_epochs=2)).fit(scored, train)
    assert model._kernel_names() == ["features", "scores"]
    assert len(model.members_[0]["neighbour_gate"]) == 4


# ------------------------------------------------------- ranking loss and attention terms
def test_ranking_loss_against_a_hand_computed_case():
    """Pairs within a dataset only, ties dropped, weights 1/(1+r_i) + 1/(1+r_j), margins over
    the dataset's std of the accuracies."""
    y = torch.tensor([0.9, 0.5, 0.7, 0.2, 0.3, 0.4])
    group = torch.tensor([0, 0, 0, 1, 1, 2])                 # dataset 2: one pair, no order
    pred = torch.tensor([0.8, 0.6, 0.5, 0.25, 0.2, 0.9])
    s0, s1 = np.std([0.9, 0.5, 0.7]), np.std([0.2, 0.3])
    # (p_i - p_j, rank_i, rank_j, std) of every ordered pair, by hand
    pairs = [(0.8 - 0.5, 0, 1, s0), (0.8 - 0.6, 0, 2, s0), (0.5 - 0.6, 1, 2, s0),
             (0.2 - 0.25, 0, 1, s1)]
    w = np.array([1 / (1 + a) + 1 / (1 + b) for _, a, b, _ in pairs])
    loss = np.array([np.log1p(np.exp(-m / s)) for m, _, _, s in pairs])
    expected = (w / w.sum() * loss).sum()
    np.testing.assert_allclose(float(trainer.ranking_loss(pred, y, group)), expected, rtol=1e-5)
    tied = torch.tensor([0.5, 0.5])                         # no ordered pair: 0, with a gradient
    p = torch.tensor([0.1, 0.2], requires_grad=True)
    out = trainer.ranking_loss(p, tied, torch.tensor([0, 0]))
    out.backward()
    assert float(out.detach()) == 0.0 and p.grad is not None


def test_neighbour_attention_against_a_hand_computed_case():
    from tpred.models.gnn.network import NeighbourAttention
    att = NeighbourAttention(width=2, hidden=1)
    with torch.no_grad():
        att.q.weight.copy_(torch.tensor([[1.0, 0.0]]))
        att.q.bias.zero_()
        att.k.weight.copy_(torch.tensor([[0.0, 2.0]]))
        att.k.bias.zero_()
        att.beta.fill_(3.0)
        att.null.fill_(0.5)
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, -1.0]])   # 3 nodes
    cand = batch.Candidates(node=torch.tensor([[1, 2]]), sim=torch.tensor([[0.4, 0.1]]),
                            value=torch.tensor([[0.2, -0.3]]),
                            known=torch.tensor([[True, True]]))
    # query node 0: q = 1; k = 2 z[:, 1] -> node 1: 2, node 2: -2 (scale 1/sqrt(1))
    logits = np.array([3 * 0.4 + 1 * 2, 3 * 0.1 + 1 * -2, 0.5])
    alpha = np.exp(logits) / np.exp(logits).sum()
    out = att(z, torch.tensor([0]), cand)
    np.testing.assert_allclose(out.detach().numpy().ravel(), [alpha[0] * 0.2 - alpha[1] * 0.3],
                               rtol=1e-5)
    unknown = batch.Candidates(cand.node, cand.sim, cand.value, torch.tensor([[True, False]]))
    logits = logits[[0, 2]]
    alpha = np.exp(logits) / np.exp(logits).sum()            # an unknown candidate: no weight
    np.testing.assert_allclose(att(z, torch.tensor([0]), unknown).detach().numpy().ravel(),
                               [alpha[0] * 0.2], rtol=1e-5)


def test_attention_candidates_are_message_edges_of_similar_nodes_and_start_at_least_squares(
        zoo):
    config = replace(FAST, attention=6, max_epochs=3)
    model = _gnn(config).fit(zoo, zoo.known_pairs())
    g = model._graph(zoo, zoo.known_pairs(), model.model_x_, model.dataset_x_)
    msg = np.arange(len(g.rec_acc))[1:]                      # edge 0 is the queried pair
    b = batch.make_batch(g, msg, model._pair_scores(zoo, g), neighbors=10,
                         target=np.arange(1))
    data_side, model_side = b.candidates
    m, d = int(g.rec_src[0]), int(g.rec_dst[0])
    kernel = g.kernels[0]
    np.testing.assert_array_equal(data_side.node[0].numpy(), kernel.dataset_order[d, :6])
    assert d not in data_side.node[0].numpy() and m not in model_side.node[0].numpy()
    table = np.full((zoo.num_models, zoo.num_datasets), np.nan)
    from tpred.graph import RECORD
    base_resid = b.graph[RECORD].edge_attr[:, 1].numpy()        # message edges, in msg order
    table[g.rec_src[msg], g.rec_dst[msg]] = base_resid
    expected = table[m, data_side.node[0].numpy()]
    np.testing.assert_array_equal(data_side.known[0].numpy(), ~np.isnan(expected))
    np.testing.assert_allclose(data_side.value[0].numpy(), np.nan_to_num(expected), atol=1e-6)
    # the gates start at the joint least-squares fit of the fixed and the attention terms
    net = model._net()
    draws = [b, b]
    trainer.init_gates(net, draws)
    net.eval()
    with torch.no_grad():
        columns = torch.cat([b.gated, net.attention_terms(net.encode(b.graph), b)], 1)
    expected_gate = trainer.fit_gate(draws, [columns, columns])
    np.testing.assert_allclose(torch.cat([net.neighbour_gate.detach(),
                                          net.attention_gate().detach()]).numpy(),
                               expected_gate.numpy(), rtol=1e-5)
    assert model._net().attention is not None
    off = _gnn(replace(FAST, attention=0)).fit(zoo, zoo.known_pairs())
    assert off._net().attention is None and "attention.dataset.gate" not in off.members_[0]


def test_level_terms_give_cold_nodes_their_neighbours_level_by_hand():
    sim = np.array([[-np.inf, 0.9, 0.5, 0.7],
                    [0.9, -np.inf, 0.1, 0.2],
                    [0.5, 0.1, -np.inf, 0.3],
                    [0.7, 0.2, 0.3, -np.inf]])
    kernel = batch.Kernel(dataset_sim=sim, model_sim=None)
    base = baseline.Baseline(mu=0.5, model_effect=np.zeros(2),
                             dataset_effect=np.array([0.3, 0.1, -0.2, 0.05]),
                             model_degree=np.ones(2), dataset_degree=np.array([0, 3, 2, 1.0]))
    src, dst = np.array([0, 1, 1]), np.array([0, 0, 2])          # dataset 0 is cold
    out = batch.level_terms(kernel, base, src, dst, k=2)
    level = (0.9 * 0.1 + 0.7 * 0.05) / (0.9 + 0.7)               # its 2 most similar warm ones
    np.testing.assert_allclose(out, [[level - 0.3, 0], [level - 0.3, 0], [0, 0]])
    # a cold neighbour is skipped: dataset 1 cold too, so 0's two are 3 and 2
    cold2 = baseline.Baseline(0.5, np.zeros(2), base.dataset_effect, np.ones(2),
                              np.array([0, 0, 2, 1.0]))
    level = (0.7 * 0.05 + 0.5 * -0.2) / (0.7 + 0.5)
    np.testing.assert_allclose(batch.level_terms(kernel, cold2, src[:1], dst[:1], k=2),
                               [[level - 0.3, 0]])


def test_prior_neighbors_moves_a_cold_datasets_predictions_and_is_deterministic(zoo):
    pairs = zoo.known_pairs()
    cold = pairs["dataset"].isin(zoo.dataset_ids[:4])
    train, test = pairs[~cold].reset_index(drop=True), pairs[cold].reset_index(drop=True)
    with_level = replace(FAST, prior_neighbors=3, max_epochs=4)
    a = _gnn(with_level).fit(zoo, train).predict(test)
    b = _gnn(with_level).fit(zoo, train).predict(test)
    ridge = _gnn(replace(with_level, prior_neighbors=0)).fit(zoo, train).predict(test)
    np.testing.assert_array_equal(a, b)
    assert np.isfinite(a).all()
    assert np.abs(a - ridge).max() > 1e-4                   # the neighbour level entered


def test_move_dataset_level_by_hand_with_a_soft_clip():
    before = baseline.Baseline(mu=0.5, model_effect=np.zeros(1),
                               dataset_effect=np.array([0.0, 0.2, 0.0]),
                               model_degree=np.ones(1), dataset_degree=np.array([0.0, 4, 0]))
    after = baseline.Baseline(0.5, np.zeros(1), np.array([0.25, 0.3, -0.1]), np.ones(1),
                              np.array([0.0, 4, 0]))
    # dataset 0 moves up by 0.25, dataset 2 down by 0.1; dataset 1 has edges: kept
    pred = np.array([0.5, 0.25, 0.75, 1.0, 0.4, 0.9, 0.05])
    std = np.array([0.1, 0.1, 0.1, 0.0, 0.1, 0.2, 0.1])
    dst = np.array([0, 0, 0, 0, 1, 1, 2])
    moved, moved_std = baseline.move_dataset_level(pred, std, before, after, dst)
    m = baseline.LEVEL_MARGIN                                        # 0.02
    assert m == 0.02
    # inside [0.02, 0.98] the shift is exact; beyond, 1 - 0.02 exp((0.98 - x) / 0.02) and
    # 0.02 exp((x - 0.02) / 0.02): 0.75 + 0.25 = 1.0 -> 1 - 0.02 / e, 0.05 - 0.1 -> 0.02 e^-3.5
    np.testing.assert_allclose(moved[[0, 1, 2, 3, 6]],
                               [0.75, 0.5, 1 - 0.02 * np.exp(-1), 1 - 0.02 * np.exp(-13.5),
                                0.02 * np.exp(-3.5)], rtol=1e-12)
    np.testing.assert_array_equal(moved[4:6], pred[4:6])            # a dataset with edges
    np.testing.assert_array_equal(moved_std[4:6], std[4:6])
    # the std moves with the slope: 1 inside, exp(...) beyond
    np.testing.assert_allclose(moved_std[[0, 1, 2, 3, 6]],
                               [0.1, 0.1, 0.1 * np.exp(-1), 0.0, 0.1 * np.exp(-3.5)])
    assert np.all(np.diff(moved[:4]) != 0) and (moved[:4][np.argsort(pred[:4])] ==
                                                np.sort(moved[:4])).all()   # order kept
    # a dataset `movable` excludes keeps its predictions; the others move as before
    kept, kept_std = baseline.move_dataset_level(pred, std, before, after, dst,
                                                 movable=np.array([True, True, False]))
    np.testing.assert_array_equal(kept[:6], moved[:6])
    assert kept[6] == pred[6] and kept_std[6] == std[6]
    # soft_clip is continuous with slope 1 at both margins and stays in (0, 1)
    x = np.array([m - 1e-9, m, m + 1e-9, 1 - m - 1e-9, 1 - m + 1e-9, -0.3, 1.3])
    y, slope = baseline.soft_clip(x, m)
    np.testing.assert_allclose(y[:5], x[:5], atol=1e-8)
    np.testing.assert_allclose(slope[:5], 1.0, atol=1e-6)
    assert 0 < y[5] < m and 1 - m < y[6] < 1


@pytest.mark.parametrize("squeeze", [0.0, 0.03])
def test_level_after_moves_cold_datasets_keeps_their_rankings_and_is_deterministic(zoo, squeeze):
    pairs = zoo.known_pairs()
    cold = pairs["dataset"].isin(zoo.dataset_ids[:4])
    train, test = pairs[~cold].reset_index(drop=True), pairs[cold].reset_index(drop=True)
    config = replace(FAST, max_epochs=4, level_after=0, logit_squeeze=squeeze)
    plain = _gnn(config).fit(zoo, train)
    moved = _gnn(replace(config, level_after=3)).fit(zoo, train)
    # the same network (level_after is applied after it), so the same members
    for a, b in zip(plain.members_, moved.members_, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)
    before, after = plain.predict(test), moved.predict(test)
    np.testing.assert_array_equal(after, _gnn(replace(config, level_after=3)).fit(
        zoo, train).predict(test))
    assert np.abs(after - before).max() > 1e-4                  # the neighbour level entered
    assert ((after > 0) & (after < 1)).all()
    for _, rows in test.groupby("dataset").indices.items():     # each dataset's ranking kept
        np.testing.assert_array_equal(np.argsort(before[rows], kind="stable"),
                                      np.argsort(after[rows], kind="stable"))
        # by one shift per dataset (of the accuracy, or of the logit on the logit scale)
        # where no prediction nears 0 or 1
        inside = (before[rows] > 0.05) & (before[rows] < 0.95)
        scale = moved._target_scale()
        shift = (to_target(after[rows], *scale) - to_target(before[rows], *scale))[inside]
        np.testing.assert_allclose(shift, shift[0], atol=1e-5)
    if squeeze:
        # level_moves reports each move in accuracy units: the logit shift the predictions
        # got, applied at the dataset's level (its baseline for a model of average effect)
        moves = moved.level_moves()
        assert set(moves.index) == set(test["dataset"]) and not moves.isna().any()
        g = moved._training_graph()
        base = batch.message_baseline(g, np.arange(len(g.rec_acc)))
        for d, rows in test.groupby("dataset").indices.items():
            z_shift = np.median(to_target(after[rows], *scale) - to_target(before[rows], *scale))
            level = base.mu + base.dataset_effect[g.dataset_index.get_loc(d)]
            np.testing.assert_allclose(moves[d], from_target(level + z_shift, *scale)
                                       - from_target(level, *scale), atol=1e-5)
        return
    # level_moves reports those shifts: one per dataset without training records
    moves = moved.level_moves()
    assert set(moves.index) == set(test["dataset"]) and not moves.isna().any()
    assert plain.level_moves().empty
    inside = (before > 0.05) & (before < 0.95)
    np.testing.assert_allclose((after - before)[inside],
                               moves[test["dataset"]].to_numpy()[inside], atol=1e-6)
    # a dataset with records keeps its predictions (pairs of datasets with other records)
    warm = train.groupby("dataset").head(1).reset_index(drop=True)
    assert (train["dataset"].value_counts()[warm["dataset"]] > 1).all()
    np.testing.assert_array_equal(moved.predict(warm), plain.predict(warm))
    # so does a new dataset with a blank metadata cell (its neighbours by imputed features)
    datasets = zoo.datasets.copy()
    blank_one = zoo.dataset_ids[0]
    datasets.loc[blank_one, TOY_DATASET_FEATURES.numeric[0]] = np.nan
    holed = Zoo(zoo.models, datasets, zoo.records, zoo.scores)
    kept = moved.predict(test, holed)
    is_blank = (test["dataset"] == blank_one).to_numpy()
    np.testing.assert_array_equal(kept[is_blank], plain.predict(test, holed)[is_blank])
    np.testing.assert_array_equal(kept[~is_blank], moved.predict(test, zoo)[~is_blank])
    # level_moves of a given zoo (all its records as edges): the blank one is NaN, not moved
    holed_train = Zoo(zoo.models, datasets, zoo.records[zoo.records["dataset"].isin(
        train["dataset"])], zoo.scores)
    moves_holed = moved.level_moves(holed_train)
    assert np.isnan(moves_holed[blank_one])
    np.testing.assert_allclose(moves_holed.drop(blank_one), moves.drop(blank_one), atol=1e-12)


def test_level_options_warn_on_the_mini_batch_path_where_they_do_nothing(zoo):
    train, test = _split(zoo)
    mini = replace(FAST, batch_size=64, max_epochs=3)
    with pytest.warns(UserWarning, match=r"gnn.prior_neighbors=3, gnn.level_after=4 is not on "
                                         r"the mini-batch path"):
        on = _gnn(replace(mini, prior_neighbors=3, level_after=4)).fit(zoo, train)
    with warnings.catch_warnings():               # the defaults (level_after=3) are not warned of
        warnings.simplefilter("error")
        default = _gnn(mini).fit(zoo, train)
    assert default.config.level_after == GNNConfig().level_after == 3
    np.testing.assert_array_equal(on.predict(test), default.predict(test))
