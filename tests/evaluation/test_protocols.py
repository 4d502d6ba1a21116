"""Protocols: splits are disjoint, cover the known pairs, are seeded; `paper` replays the script."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tpred.config import ProtocolConfig
from tpred.data.zoo import Zoo
from tpred.evaluation.metrics import paper_matrices, paper_metrics
from tpred.evaluation.protocols import (
    PAPER_RATIOS,
    expand_protocols,
    make_splits,
    paper_known_mask,
    paper_split,
)
from tpred.models.additive import AdditivePredictor
from tpred.testing import toy_zoo

DOMAINNET = Path(__file__).resolve().parents[2] / "../shared/benchmarks/domainnet270"
CFG = ProtocolConfig(num_folds=3, max_leave_one_out=20)
KFOLD = ["cold-dataset", "cold-model", "leave-domain-out"]


@pytest.fixture(scope="module")
def zoo() -> Zoo:
    """6 models x 15 datasets (3 domains), about 80 % of pairs known."""
    return toy_zoo(num_models=6, num_datasets=15, known_fraction=0.8, seed=1, with_scores=False)


def _pairs(frame: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(frame["model"], frame["dataset"], strict=True))


def _check_split(zoo: Zoo, split) -> None:
    """Every test pair has a record; train and test are disjoint known pairs; no duplicates."""
    zoo.accuracy(split.test)  # raises for a test pair without a record
    zoo.accuracy(split.train)
    assert list(split.train.columns) == ["model", "dataset"] == list(split.test.columns)
    train, test = _pairs(split.train), _pairs(split.test)
    assert len(train) == len(split.train) and len(test) == len(split.test)
    assert not train & test
    assert len(test) > 0 and len(train) > 0


# ------------------------------------------------------------------------------ names
def test_expand_protocols_turns_random_into_one_protocol_per_fraction():
    cfg = ProtocolConfig(random_fractions=(0.2, 0.5))
    assert expand_protocols(["cold-dataset", "random", "paper"], cfg) == [
        "cold-dataset", "random-0.2", "random-0.5", "paper"]
    assert expand_protocols(["random-0.3"], cfg) == ["random-0.3"]


@pytest.mark.parametrize("name, match", [
    ("cold-pair", "Could not resolve protocol 'cold-pair'"),
    ("random", "must be expanded"),
    ("random-1.5", "fraction 0 < r < 1"),
    ("random-x", "fraction 0 < r < 1"),
])
def test_unknown_protocol_names_raise(zoo, name, match):
    with pytest.raises(ValueError, match=match):
        make_splits(name, zoo, 0, CFG)


def test_expand_protocols_rejects_an_unknown_name():
    with pytest.raises(ValueError, match="among choices"):
        expand_protocols(["random", "nope"], CFG)


# ----------------------------------------------------------------------------- random
@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.8])
def test_random_hides_the_fraction_and_covers_the_known_pairs(zoo, fraction):
    (split,) = make_splits(f"random-{fraction}", zoo, 3, CFG)
    _check_split(zoo, split)
    known = len(zoo.records)
    assert len(split.test) == round(fraction * known)
    assert _pairs(split.train) | _pairs(split.test) == _pairs(zoo.known_pairs())
    assert split.protocol == f"random-{fraction}" and split.seed == 3 and split.fold == 0


def test_random_is_deterministic_per_seed_and_differs_across_seeds(zoo):
    a, b, c = (make_splits("random-0.4", zoo, s, CFG)[0] for s in (7, 7, 8))
    pd.testing.assert_frame_equal(a.test, b.test)
    assert _pairs(a.test) != _pairs(c.test)


def test_random_with_too_few_records_raises():
    tiny = Zoo.from_records(pd.DataFrame({"model": ["m"], "dataset": ["d"], "accuracy": [0.5]}))
    with pytest.raises(ValueError, match="both must be >= 1"):
        make_splits("random-0.5", tiny, 0, CFG)


# --------------------------------------------------------------------------- k-fold ones
@pytest.mark.parametrize("name", KFOLD)
def test_kfold_test_sets_partition_the_known_pairs(zoo, name):
    splits = make_splits(name, zoo, 0, CFG)
    for split in splits:
        _check_split(zoo, split)
        assert _pairs(split.train) | _pairs(split.test) == _pairs(zoo.known_pairs())
    tests = pd.concat([s.test for s in splits])
    assert len(tests) == len(zoo.records)                            # no pair tested twice
    assert _pairs(tests) == _pairs(zoo.known_pairs())                 # every pair tested once
    assert [s.fold for s in splits] == list(range(len(splits)))


@pytest.mark.parametrize("name, column", [("cold-dataset", "dataset"), ("cold-model", "model"),
                                          ("leave-domain-out", "dataset")])
def test_held_out_nodes_have_no_training_pair(zoo, name, column):
    for split in make_splits(name, zoo, 1, CFG):
        assert not set(split.test[column]) & set(split.train[column])
        assert set(split.test[column]) == set(split.context["held_out"])


def test_cold_dataset_has_num_folds_folds_of_near_equal_size(zoo):
    splits = make_splits("cold-dataset", zoo, 0, CFG)
    sizes = [split.test["dataset"].nunique() for split in splits]
    assert len(splits) == 3 and sorted(sizes) == [5, 5, 5]


@pytest.mark.parametrize("name, cfg", [("cold-dataset", CFG),
                                       ("cold-model", ProtocolConfig(max_leave_one_out=2,
                                                                     num_folds=3))])
def test_kfold_is_deterministic_per_seed_and_differs_across_seeds(zoo, name, cfg):
    def held_out(seed):
        return [split.context["held_out"] for split in make_splits(name, zoo, seed, cfg)]
    assert held_out(4) == held_out(4)
    assert held_out(4) != held_out(5)


def test_cold_model_is_leave_one_out_for_small_zoos_and_kfold_for_large(zoo):
    loo = make_splits("cold-model", zoo, 0, ProtocolConfig(max_leave_one_out=6))
    assert [s.context["held_out"] for s in loo] == [(m,) for m in zoo.model_ids]
    assert [s.context["held_out"] for s in make_splits(
        "cold-model", zoo, 9, ProtocolConfig(max_leave_one_out=6))] == [(m,) for m in zoo.model_ids]
    kfold = make_splits("cold-model", zoo, 0, ProtocolConfig(max_leave_one_out=5, num_folds=2))
    assert [len(s.context["held_out"]) for s in kfold] == [3, 3]


def test_a_dataset_without_records_is_never_tested():
    records = pd.DataFrame({"model": ["a", "b", "a", "b", "a", "b"],
                            "dataset": ["x", "x", "y", "y", "z", "z"],
                            "accuracy": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]})
    datasets = pd.DataFrame({"dataset": ["x", "y", "z", "empty"], "domain": ["p", "q", "p", "q"]})
    zoo = Zoo.from_frames(None, datasets, records)
    for name in ("cold-dataset", "leave-domain-out"):
        splits = make_splits(name, zoo, 0, ProtocolConfig(num_folds=3))
        assert "empty" not in set(pd.concat([s.test for s in splits])["dataset"])
    assert len(make_splits("cold-dataset", zoo, 0, ProtocolConfig(num_folds=3))) == 3


def test_too_few_units_for_the_folds_raise(zoo):
    with pytest.raises(ValueError, match="fewer than num_folds=20"):
        make_splits("cold-dataset", zoo, 0, ProtocolConfig(num_folds=20))
    with pytest.raises(ValueError, match="fewer than num_folds=7"):
        make_splits("cold-model", zoo, 0, ProtocolConfig(num_folds=7, max_leave_one_out=2))
    one_model = Zoo.from_records(pd.DataFrame({"model": ["m", "m"], "dataset": ["d", "e"],
                                               "accuracy": [0.5, 0.6]}))
    with pytest.raises(ValueError, match="at least 2 models with records, got 1"):
        make_splits("cold-model", one_model, 0, CFG)


# ------------------------------------------------------------------------ leave-domain-out
def test_leave_domain_out_holds_out_each_domain_once(zoo):
    splits = make_splits("leave-domain-out", zoo, 0, CFG)
    domains = zoo.datasets["domain"]
    assert [s.context["domain"] for s in splits] == sorted(domains.unique())
    for split in splits:
        assert set(domains[split.test["dataset"]]) == {split.context["domain"]}
        assert split.context["domain"] not in set(domains[split.train["dataset"]])
    # seed-independent: the folds are the domains
    again = make_splits("leave-domain-out", zoo, 5, CFG)
    assert [_pairs(s.test) for s in again] == [_pairs(s.test) for s in splits]


def test_leave_domain_out_keeps_datasets_without_a_domain_in_training():
    records = pd.DataFrame({"model": ["a", "b"] * 3, "dataset": ["x", "x", "y", "y", "z", "z"],
                            "accuracy": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]})
    datasets = pd.DataFrame({"dataset": ["x", "y", "z"], "domain": ["p", "q", None]})
    splits = make_splits("leave-domain-out", Zoo.from_frames(None, datasets, records), 0, CFG)
    assert len(splits) == 2
    assert all("z" in set(s.train["dataset"]) and "z" not in set(s.test["dataset"])
               for s in splits)


def test_leave_domain_out_errors(zoo):
    with pytest.raises(ValueError, match="no column 'area'"):
        make_splits("leave-domain-out", zoo, 0, ProtocolConfig(domain_column="area"))
    one = Zoo.from_frames(None, pd.DataFrame({"dataset": ["x", "y"], "domain": ["p", "p"]}),
                          pd.DataFrame({"model": ["a", "a"], "dataset": ["x", "y"],
                                        "accuracy": [0.1, 0.2]}))
    with pytest.raises(ValueError, match="at least 2 values of datasets column 'domain'"):
        make_splits("leave-domain-out", one, 0, CFG)


# ------------------------------------------------------------------------------- paper
@pytest.mark.parametrize("seed", [0, 9])
def test_paper_mask_has_10_groups_with_int_10_r_known_rows(seed):
    mask = paper_known_mask(seed)
    assert mask.shape == (10, 270) and mask.dtype == bool
    counts = mask.sum(axis=0)                                          # [270]
    expected = sorted([int(10 * r) for r in PAPER_RATIOS] * 27)
    assert sorted(counts.tolist()) == expected                         # 27 columns per group


def test_paper_mask_is_deterministic_and_differs_across_seeds_without_touching_torch():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, b, c = paper_known_mask(3), paper_known_mask(3), paper_known_mask(4)
    assert torch.equal(before, torch.random.get_rng_state())
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()


def test_paper_mask_uses_the_seed_th_of_the_script_s_mask_sets():
    # The script seeds torch with j and uses the j-th of its consecutive draws; seed 0 is the
    # first draw, so its cold columns are the first 27 shuffled positions' complement in group 9.
    # Literal computed by this implementation, whose reproduction of the README's additive
    # figures (test below, and bench/bench_paper_additive.py) validates it.
    cold = np.flatnonzero(paper_known_mask(0).sum(axis=0) == 0)
    assert len(cold) == 27
    gen = torch.Generator().manual_seed(0)
    shuffle = torch.randperm(270, generator=gen).numpy()
    np.testing.assert_array_equal(np.sort(shuffle[243:]), cold)       # group 9 = last 27


def test_paper_mask_generalises_the_group_formulas():
    mask = paper_known_mask(0, num_rows=4, num_cols=20)
    counts = mask.sum(axis=0)
    assert sorted(counts.tolist()) == sorted([int(4 * r) for r in PAPER_RATIOS] * 2)


def test_paper_mask_errors():
    with pytest.raises(ValueError, match="num_cols >= 10"):
        paper_known_mask(0, num_rows=10, num_cols=9)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        paper_known_mask(-1)


def test_paper_split_on_a_full_zoo():
    zoo = toy_zoo(num_models=4, num_datasets=20, with_scores=False)
    (split,) = make_splits("paper", zoo, 2, CFG)
    _check_split(zoo, split)
    assert len(split.train) + len(split.test) == 80
    known = split.context["known_mask"]
    np.testing.assert_array_equal(known, paper_known_mask(2, 4, 20))
    assert split.context["models"] == tuple(pd.unique(zoo.records["model"]))
    assert split.context["datasets"] == tuple(pd.unique(zoo.records["dataset"]))
    rows = pd.Index(split.context["models"]).get_indexer(split.train["model"])
    cols = pd.Index(split.context["datasets"]).get_indexer(split.train["dataset"])
    assert known[rows, cols].all() and known.sum() == len(split.train)


def test_paper_split_requires_the_full_matrix(zoo):
    with pytest.raises(ValueError, match="needs the full 6 x 15 records matrix"):
        paper_split(zoo, 0)


@pytest.mark.skipif(not DOMAINNET.is_dir(), reason="../shared/benchmarks/domainnet270 missing")
def test_paper_protocol_reproduces_the_readme_additive_figures():
    root = DOMAINNET.resolve()
    zoo = Zoo.from_frames(pd.read_csv(root / "models.csv"), pd.read_csv(root / "datasets.csv"),
                          pd.read_csv(root / "records.csv"))
    wide = pd.read_csv(root / "records_wide_original.csv", index_col=0)
    rows = []
    for seed in range(10):
        (split,) = make_splits("paper", zoo, seed, CFG)
        if seed == 0:  # the mask lies over the original matrix's order
            assert list(split.context["models"]) == list(wide.index)
            columns = zoo.datasets.loc[list(split.context["datasets"]), "record_column"]
            assert list(columns) == list(wide.columns)
        predicted = AdditivePredictor().fit(zoo, split.train).predict(split.test)
        matrices = paper_matrices(
            split.test.assign(true=zoo.accuracy(split.test), predicted=predicted),
            split.train.assign(true=zoo.accuracy(split.train)),
            split.context["models"], split.context["datasets"])
        rows.append(paper_metrics(*matrices))
    result = pd.DataFrame(rows)
    assert result["avg_pearson"].mean() == pytest.approx(0.757, abs=0.005)
    assert result["avg_pearson"].std() == pytest.approx(0.006, abs=0.005)
    assert result["bucket_0_10"].mean() == pytest.approx(0.613, abs=0.005)
