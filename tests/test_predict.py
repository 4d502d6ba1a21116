"""Predicting new models and datasets with a saved run: `tpred.checkpoint`, `tpred.api`,
`python -m tpred.predict`."""

from __future__ import annotations

import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import yaml

import tpred
from tpred.api import Extension, Run, format_rankings, gnn_embeddings, rank_models, tie_notes
from tpred.checkpoint import (
    NORMAL_COVERAGE,
    Calibration,
    calibrate,
    calibrated_std,
    coverage,
    ensemble_predict,
    fit_all,
    fit_calibration,
    level_spreads,
    load_checkpoint,
    save_checkpoint,
    validation_datasets,
)
from tpred.config import GNNConfig, ProtocolConfig, TextConfig, TrainConfig
from tpred.data.zoo import Zoo
from tpred.errors import PartialScoresWarning
from tpred.evaluation.protocols import make_splits
from tpred.evaluation.run import evaluate
from tpred.predict import level_line
from tpred.predict import main as predict_main
from tpred.testing import TOY_DATASET_FEATURES, TOY_MODEL_FEATURES, toy_zoo, write_zoo

#: small and fast gnn: a toy fit takes a fraction of a second
FAST = GNNConfig(hidden_channels=16, heads=2, max_epochs=30, patience=8, num_threads=1,
                 cv_max_records=0)
METHODS = ("additive", "lr", "mf", "knn", "gnn", "score")
PROG_ERROR = "python -m tpred.predict: error: "


def _config(**kw) -> TrainConfig:
    base = TrainConfig(model_features=TOY_MODEL_FEATURES, dataset_features=TOY_DATASET_FEATURES,
                       text=TextConfig(encoder="hash", cache_dir=None), methods=METHODS,
                       protocols=("cold-dataset",), seeds=(0, 1), gnn=FAST,
                       protocol=ProtocolConfig(num_folds=3))
    return replace(base, **kw)


def _without(zoo: Zoo, datasets) -> Zoo:
    """`zoo` without `datasets`: no metadata row, no record, no score."""
    keep = lambda f: f[~f["dataset"].isin(list(datasets))]  # noqa: E731
    return Zoo.from_frames(zoo.models, keep(zoo.datasets.reset_index()), keep(zoo.records),
                           keep(zoo.scores))


def _write_new_datasets(zoo: Zoo, held, folder: Path) -> tuple[Path, Path]:
    """The held-out datasets' metadata and scores as CSV files, as a user would give them."""
    folder.mkdir(parents=True, exist_ok=True)
    datasets, scores = folder / "new_datasets.csv", folder / "new_scores.csv"
    zoo.datasets.loc[list(held)].reset_index().to_csv(datasets, index=False)
    zoo.scores[zoo.scores["dataset"].isin(list(held))].to_csv(scores, index=False)
    return datasets, scores


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def zoo() -> Zoo:
    return toy_zoo(num_models=6, num_datasets=12, seed=1)


@pytest.fixture(scope="module")
def fold_run(zoo, tmp_path_factory):
    """Fold 1 of cold-dataset (seed 1): evaluate's predictions, and a run saved from that fold.

    The run holds every method fitted on the fold's training pairs as `evaluate` fits them; its
    zoo lacks the held-out datasets entirely, so they can only come back as new datasets.
    """
    cfg = _config(seeds=(1,))
    result = evaluate(zoo, cfg, progress=False)
    split = make_splits("cold-dataset", zoo, 1, cfg.protocol)[1]
    held = split.context["held_out"]
    methods = sorted(result.predictions["method"].unique())
    ensembles = fit_all(zoo, cfg, methods, split.train, progress=False)
    folder = tmp_path_factory.mktemp("fold_run")
    save_checkpoint(folder / "checkpoint", cfg, _without(zoo, held), ensembles,
                    train_pairs=split.train)
    expected = result.predictions[result.predictions["fold"] == 1]
    return folder, held, expected, methods


@pytest.fixture(scope="module")
def run(zoo) -> Run:
    """Every method fitted on all records with two seeds, calibrated, in memory."""
    cfg = _config()
    methods = ["additive", "lr", "gnn", "score:score_a"]
    ensembles = fit_all(zoo, cfg, methods, progress=False)
    calibration = {"gnn": calibrate(zoo, cfg, "gnn", members=ensembles["gnn"])}
    return Run(cfg, zoo, ensembles, calibration)


@pytest.fixture(scope="module")
def new_zoo() -> Zoo:
    """Other nodes of the same kind, with ids `n*` / `x*` that the run does not have."""
    other = toy_zoo(num_models=2, num_datasets=3, seed=7)
    rename = {"model": {m: f"x{m}" for m in other.model_ids},
              "dataset": {d: f"n{d}" for d in other.dataset_ids}}
    models = other.models.reset_index().replace(rename)
    datasets = other.datasets.reset_index().replace(rename)
    return Zoo.from_frames(models, datasets, other.records.replace(rename),
                           other.scores.replace(rename))


def _scores_for(run_zoo: Zoo, new_zoo: Zoo, datasets=True) -> pd.DataFrame:
    """Scores of every run model on the new datasets (values borrowed from the new zoo)."""
    ids = new_zoo.dataset_ids
    grid = pd.MultiIndex.from_product([run_zoo.model_ids, ids], names=["model", "dataset"])
    rows = grid.to_frame(index=False)
    rng = np.random.default_rng(0)
    return pd.concat([rows.assign(metric=m, value=rng.normal(size=len(rows)))
                      for m in ("score_a", "score_b")], ignore_index=True)


# ---------------------------------------------------- held out = protocol (the key test)
def test_held_out_datasets_predicted_from_csv_equal_the_cold_dataset_fold(fold_run, tmp_path):
    folder, held, expected, methods = fold_run
    datasets, scores = _write_new_datasets(toy_zoo(num_models=6, num_datasets=12, seed=1),
                                           held, tmp_path)
    for method in methods:
        out = tmp_path / f"{method.replace(':', '_')}.csv"
        assert predict_main(["--run", str(folder), "--datasets", str(datasets), "--scores",
                             str(scores), "--method", method, "--top-k", "0", "--out", str(out),
                             "--quiet"]) == 0
        got = pd.read_csv(out)
        want = expected[expected["method"] == method]
        merged = want.merge(got, on=["model", "dataset"], suffixes=("_protocol", ""))
        assert len(got) == len(want) == len(merged) == 6 * len(held)
        # float32 sums over the graph's edges in another node order differ in the last bit
        np.testing.assert_allclose(merged["predicted"], merged["predicted_protocol"],
                                   rtol=0, atol=1e-6, err_msg=method)
        assert merged["std"].isna().all()  # one seed: one member, no spread


def test_baselines_fitted_without_the_held_out_datasets_equal_the_protocol(fold_run, zoo):
    """For the baselines the deployment path (a zoo that never saw the held-out datasets) is
    the protocol's path exactly: their fit reads the training nodes only."""
    _, held, expected, _ = fold_run
    cfg = _config(seeds=(1,))
    small = _without(zoo, held)
    ensembles = fit_all(small, cfg, ["additive", "lr", "mf", "knn"], progress=False)
    run = Run(cfg, small, ensembles)
    new = zoo.datasets.loc[list(held)].reset_index()
    scores = zoo.scores[zoo.scores["dataset"].isin(list(held))]
    for method in ensembles:
        got = run.predict(datasets=new, scores=scores, method=method)
        want = expected[expected["method"] == method].merge(got, on=["model", "dataset"])
        assert len(want) == len(got) == 6 * len(held)
        np.testing.assert_allclose(want["predicted_y"], want["predicted_x"], atol=1e-12)


# ----------------------------------------------------------------------- checkpoint
def test_checkpoint_round_trip_keeps_config_zoo_ensembles_and_calibration(run, tmp_path,
                                                                          new_zoo):
    path = run.save(tmp_path)
    assert path == tmp_path / "checkpoint"
    loaded = tpred.load(tmp_path)
    assert loaded.path == tmp_path and loaded.config == run.config
    assert loaded.methods == run.methods and len(loaded.ensembles["gnn"]) == 2
    assert loaded.calibration == run.calibration
    for table in ("models", "datasets", "records", "scores"):
        pd.testing.assert_frame_equal(getattr(loaded.zoo, table), getattr(run.zoo, table))
    new = new_zoo.datasets.reset_index()
    scores = _scores_for(run.zoo, new_zoo)
    for method in run.methods:  # predictions after loading equal those before saving, exactly
        pd.testing.assert_frame_equal(loaded.predict(datasets=new, scores=scores, method=method),
                                      run.predict(datasets=new, scores=scores, method=method))
    assert load_checkpoint(path)["format"] == 6


def test_load_rejects_missing_unreadable_and_foreign_files(tmp_path):
    with pytest.raises(ValueError, match=r"no checkpoint here \(a run folder holds "):
        tpred.load(tmp_path)
    (tmp_path / "checkpoint.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match=r"checkpoint.pkl: not a readable checkpoint"):
        tpred.load(tmp_path, trust=True)
    joblib.dump({"format": 99}, tmp_path / "checkpoint.pkl")
    with pytest.raises(ValueError, match=r"not a tpred checkpoint of format \[3\] "
                                         r"\(found 99; "):
        load_checkpoint(tmp_path / "checkpoint.pkl", trust=True)


def test_fit_all_fits_seeded_methods_once_per_seed_and_others_once(run):
    assert [len(run.ensembles[m]) for m in run.methods] == [1, 1, 2, 1]
    assert [p.seed for p in run.ensembles["gnn"]] == [0, 1]


# ------------------------------------------------------------------ ensemble arithmetic
class _Const:
    """A stub member predicting fixed values (and, with `std`, an inner ensemble's spread)."""

    def __init__(self, value, std=None):
        self.value, self.std = value, std
        if std is not None:
            self.members_ = [None, None]

    def predict(self, pairs, zoo=None, *, return_std=False):
        mean = np.full(len(pairs), self.value)
        return (mean, np.full(len(pairs), self.std)) if return_std else mean


def test_ensemble_mean_and_population_std_over_every_network():
    pairs = pd.DataFrame({"model": ["a", "b"], "dataset": ["x", "x"]})
    mean, std = ensemble_predict([_Const(0.2), _Const(0.4)], pairs)
    np.testing.assert_allclose(mean, 0.3)
    np.testing.assert_allclose(std, 0.1)
    # two seeds of two networks: 0.1, 0.3 and 0.3, 0.5 -> mean 0.3, var (0.04 + 0.04) / 4
    mean, std = ensemble_predict([_Const(0.2, 0.1), _Const(0.4, 0.1)], pairs)
    np.testing.assert_allclose(mean, 0.3)
    np.testing.assert_allclose(std, np.sqrt(0.02))
    mean, std = ensemble_predict([_Const(0.7)], pairs)  # one network: no estimate
    np.testing.assert_allclose(mean, 0.7)
    assert np.isnan(std).all()


def test_coverage_and_scale_closed_forms():
    true = np.zeros(5)
    mean = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    std = np.ones(5)
    assert coverage(true, mean, std, 1) == pytest.approx(0.2)
    assert coverage(true, mean, std, 2) == pytest.approx(0.4)
    assert np.isnan(coverage(true[:0], mean[:0], std[:0], 1))
    # |z| = 1..5, constant std: the smallest scale covering 68.27 % (4 of 5 pairs) is 4
    scale, floor = fit_calibration(true, mean, std)
    assert floor == 0 and scale == pytest.approx(4.0, abs=1e-9)
    assert coverage(true, mean, scale * std, 1) == pytest.approx(0.8)


def test_fit_calibration_closed_forms():
    err = np.arange(1.0, 11.0)                                 # |errors| 1..10
    # every std 0: no scale, the floor is the 68.27 % quantile of |error|
    scale, floor = fit_calibration(err, np.zeros(10), np.zeros(10))
    assert np.isnan(scale) and floor == pytest.approx(np.quantile(err, NORMAL_COVERAGE[1]))
    np.testing.assert_allclose(calibrated_std(np.zeros(3), scale, floor), floor)
    # a constant std: scale and floor do the same, and the smaller floor (0) wins; the scale
    # is the smallest that covers 7 of 10 (68.27 % rounds up to 7 pairs), i.e. |error| 7
    scale, floor = fit_calibration(err, np.zeros(10), np.full(10, 2.0))
    assert floor == 0 and scale == pytest.approx(3.5, abs=1e-9)
    np.testing.assert_allclose(calibrated_std(np.array([2.0, 4.0]), 3.0, 4.0), [np.sqrt(52),
                                                                                 np.sqrt(160)])
    assert fit_calibration(err[:0], err[:0], err[:0])[1] == 0


def test_a_calibrated_std_of_an_accuracy_is_at_most_one_half():
    from tpred.checkpoint import MAX_STD, Calibration

    # fitted on 3 pairs of a 9-record zoo: scale ~400 (seen on the README's own zoo)
    cal = Calibration(397.1, 0.0, 3, ("d",), (0.0, 1 / 3), (1.0, 1.0))
    np.testing.assert_allclose(cal.apply(np.array([0.0, 1e-4, 0.009, 0.5])),
                               [0.0, 0.03971, MAX_STD, MAX_STD])
    assert MAX_STD == 0.5   # sqrt of Popoviciu's bound (1 - 0)^2 / 4


def test_fit_calibration_floor_covers_pairs_whose_members_agree():
    # 50 pairs whose spread matches the error exactly and 50 whose members agree (std 0) but
    # miss by 0.05: no scale alone covers more than half of them, a floor does
    rng = np.random.default_rng(0)
    spread = rng.uniform(0.01, 0.2, 50)
    err = np.concatenate([spread, np.full(50, 0.05)])
    std = np.concatenate([spread, np.zeros(50)])
    assert coverage(err, np.zeros(100), 1e6 * std, 1) == 0.5
    scale, floor = fit_calibration(err, np.zeros(100), std)
    sigma = calibrated_std(std, scale, floor)
    assert scale > 0
    assert NORMAL_COVERAGE[1] <= coverage(err, np.zeros(100), sigma, 1) <= NORMAL_COVERAGE[1] + 0.01
    # the pairs with std 0 are covered only by the floor, and half the pairs cannot reach
    # 68.27 %: so the floor must reach their error
    assert floor >= 0.05


class _Constant:
    """A stub ensemble member: predicts `value` for every pair (and records what it was asked)."""

    def __init__(self, value: float) -> None:
        self.value, self.asked = value, []

    def predict(self, pairs, zoo=None):
        self.asked.append(sorted(pd.unique(pairs["dataset"])))
        return np.full(len(pairs), self.value)


def test_reference_spread_is_the_mean_std_over_chunks_of_datasets():
    from tpred.checkpoint import reference_spread

    pairs = pd.DataFrame({"model": ["m0", "m1"] * 5,
                          "dataset": [f"d{i}" for i in range(5) for _ in range(2)]})
    members = [_Constant(0.6), _Constant(0.9), _Constant(0.9)]
    # three members 0.6, 0.9, 0.9: mean 0.8, population std sqrt((0.04 + 0.01 + 0.01) / 3)
    assert reference_spread(members, pairs, 3, seed=0) == pytest.approx(np.sqrt(0.02))
    # predicted a chunk of datasets at a time: 3 disjoint chunks covering the 5 datasets
    chunks = members[0].asked
    assert len(chunks) == 3 and sorted(d for c in chunks for d in c) == [f"d{i}" for i in
                                                                          range(5)]


def test_relative_spread_and_the_calibrated_std_with_a_reference():
    from tpred.checkpoint import Calibration, relative_spread

    std = np.array([0.0, 0.01, 0.02])
    np.testing.assert_allclose(relative_spread(std, 0.01), [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(relative_spread(std, float("nan")), std)  # older checkpoint
    np.testing.assert_array_equal(relative_spread(std, 0.0), 0.0)           # members all agree
    # sqrt((scale * std / reference)^2 + floor^2) = sqrt((0.03 * [0, 1, 2])^2 + 0.04^2)
    cal = Calibration(0.03, 0.04, 10, ("d",), (0.1, 0.2), (0.68, 0.95), 0.01)
    np.testing.assert_allclose(cal.apply(std), [0.04, 0.05, np.sqrt(0.06 ** 2 + 0.04 ** 2)])
    old = Calibration(3.0, 0.04, 10, ("d",), (0.1, 0.2), (0.68, 0.95))     # no reference
    np.testing.assert_allclose(old.apply(std), [0.04, 0.05, np.sqrt(0.06 ** 2 + 0.04 ** 2)])
    assert cal.describe() == "sqrt((0.03 x std / 0.01)^2 + 0.040^2), at most 0.5"
    assert old.describe() == "sqrt((3 x std)^2 + 0.040^2), at most 0.5"


def test_fit_level_calibration_picks_the_level_term_when_errors_follow_it():
    from tpred.checkpoint import LEVEL_WEIGHTS, fit_level_calibration, gaussian_nll

    rng = np.random.default_rng(0)
    level = rng.choice([0.01, 0.1], 2000)              # two kinds of dataset
    err = rng.normal(0.0, level)                       # errors as wide as the level spread
    std = np.full(2000, 0.01)                          # members that do not see it
    scale, floor, w = fit_level_calibration(err, np.zeros(2000), std, level)
    assert w == 1.0
    sigma = calibrated_std(std, scale, floor, w * level)
    assert coverage(err, 0, sigma, 1) == pytest.approx(NORMAL_COVERAGE[1], abs=0.002)
    for narrow in (level == 0.01, level == 0.1):       # covered alike in both kinds
        assert coverage(err[narrow], 0, sigma[narrow], 1) == pytest.approx(0.68, abs=0.05)
    # against the best form without it, and each candidate by hand
    nll = {v: gaussian_nll(err, 0, calibrated_std(
        std, *fit_calibration(err, np.zeros(2000), std, v * level), v * level))
        for v in LEVEL_WEIGHTS}
    assert min(nll, key=nll.get) == w and nll[w] < nll[0.0] - 0.3
    # errors that ignore the level: the level term is not taken
    flat = rng.normal(0.0, 0.05, 2000)
    assert fit_level_calibration(flat, np.zeros(2000), std, level)[2] == 0.0


def test_fit_calibration_with_a_fixed_extra_width_by_hand():
    err = np.arange(1.0, 11.0)                                 # |errors| 1..10
    extra = np.full(10, 3.0)
    # every std 0: the floor f is the smallest with sqrt(f² + 9) covering 7 of 10: f² = 49 - 9
    scale, floor = fit_calibration(err, np.zeros(10), np.zeros(10), extra)
    assert np.isnan(scale)
    assert floor == pytest.approx(np.quantile(np.sqrt(np.maximum(err ** 2 - 9, 0)),
                                              NORMAL_COVERAGE[1]))
    np.testing.assert_allclose(calibrated_std(np.zeros(2), scale, floor, extra[:2]),
                               np.sqrt(floor ** 2 + 9))
    np.testing.assert_allclose(calibrated_std(np.array([1.0]), 2.0, 0.0, np.array([1.5])),
                               [2.5])                          # sqrt(4 + 2.25)


def test_a_calibration_with_a_level_term_needs_the_level_and_says_so():
    from tpred.checkpoint import Calibration

    cal = Calibration(0.03, 0.04, 10, ("d",), (0.1, 0.2), (0.68, 0.95), 0.01, 2.0)
    std = np.array([0.0, 0.01])
    np.testing.assert_allclose(cal.apply(std, np.array([0.015, 0.0])),
                               [np.sqrt(0.04 ** 2 + 0.03 ** 2), 0.05])
    with pytest.raises(ValueError, match="pass each pair's dataset level spread"):
        cal.apply(std)
    assert cal.describe() == ("sqrt((0.03 x std / 0.01)^2 + 0.040^2 + (2 x level spread)^2), "
                              "at most 0.5")


def test_a_format_5_calibration_reads_with_no_level_term(tmp_path):
    from tpred.checkpoint import Calibration, _calibration_from_dict, _calibration_to_dict

    cal = Calibration(0.03, 0.04, 10, ("d",), (0.1, 0.2), (0.68, 0.95), 0.01, 2.0)
    entry = _calibration_to_dict(cal)
    assert _calibration_from_dict(entry, tmp_path, 6) == cal
    del entry["level_weight"]
    assert _calibration_from_dict(entry, tmp_path, 5).level_weight == 0.0
    with pytest.raises(ValueError, match=r"a calibration entry is malformed \(KeyError"):
        _calibration_from_dict(entry, tmp_path, 6)


def test_a_calibration_entry_without_a_reference_is_format_4_only(tmp_path):
    from tpred.checkpoint import Calibration, _calibration_from_dict, _calibration_to_dict

    cal = Calibration(0.03, 0.04, 10, ("d",), (0.1, 0.2), (0.68, 0.95), 0.01)
    values = _calibration_to_dict(cal)
    assert _calibration_from_dict(values, tmp_path) == cal
    del values["reference"]
    assert np.isnan(_calibration_from_dict(values, tmp_path, 4).reference)
    with pytest.raises(ValueError, match=r"a calibration entry is malformed"):
        _calibration_from_dict(values, tmp_path, 5)


def test_validation_folds_are_disjoint_folds_of_the_training_datasets():
    from tpred.checkpoint import validation_folds

    pairs = pd.DataFrame({"model": "m", "dataset": [f"d{i}" for i in range(10)]})
    folds = validation_folds(pairs, 5, seed=3, count=3)
    assert [len(f) for f in folds] == [2, 2, 2]
    assert len({d for f in folds for d in f}) == 6
    assert folds[0] == validation_datasets(pairs, 5, seed=3)
    assert len(validation_folds(pairs.iloc[:2], 5, seed=0, count=3)) == 2  # only 2 folds exist


def test_validation_datasets_are_a_fold_of_the_training_datasets():
    pairs = pd.DataFrame({"model": "m", "dataset": [f"d{i}" for i in range(10)]})
    held = validation_datasets(pairs, 5, seed=3)
    assert len(held) == 2 and set(held) <= set(pairs["dataset"])
    assert held == validation_datasets(pairs, 5, seed=3)
    with pytest.raises(ValueError, match=r"calibration needs at least 2 datasets"):
        validation_datasets(pairs.iloc[:1], 5, seed=0)


@pytest.mark.parametrize("level", [False, True], ids=["default", "with-level-term"])
def test_calibration_reads_only_training_records(zoo, level, monkeypatch):
    """Poisoning every record outside the training pairs leaves the calibration unchanged (also
    with the level term, whose knn is fitted on the training pairs of each validation fold;
    this zoo has too few validation datasets for it unless the minimum is lowered)."""
    import tpred.checkpoint

    if level:
        monkeypatch.setattr(tpred.checkpoint, "LEVEL_MIN_DATASETS", 1)
    cfg = _config()
    split = make_splits("cold-dataset", zoo, 0, cfg.protocol)[0]
    records = zoo.records.copy()
    test = records["dataset"].isin(split.context["held_out"])
    records.loc[test, "accuracy"] = 1 - records.loc[test, "accuracy"]
    poisoned = Zoo.from_frames(zoo.models, zoo.datasets, records, zoo.scores)
    clean = calibrate(zoo, cfg, "gnn", split.train)
    dirty = calibrate(poisoned, cfg, "gnn", split.train)
    assert clean == dirty
    assert isinstance(clean, Calibration) and clean.scale > 0
    assert not set(clean.datasets) & set(split.context["held_out"])
    slack = tpred.checkpoint.LEVEL_SLACK if clean.level_weight > 0 else 0.0
    assert (NORMAL_COVERAGE[1] - 1.5 / clean.num_pairs <= clean.coverage_calibrated[0]
            <= NORMAL_COVERAGE[1] + slack + 1.5 / clean.num_pairs)
    assert clean.level_weight in tpred.checkpoint.LEVEL_WEIGHTS
    if not level:
        assert clean.level_weight == 0.0
    assert calibrate(zoo, cfg, "additive", split.train) is None  # one member: nothing to scale


def test_pair_kinds_by_hand():
    from tpred.checkpoint import pair_kinds

    known = pd.DataFrame({"model": ["m0", "m1"], "dataset": ["d0", "d1"]})
    pairs = pd.DataFrame({"model": ["m0", "m0", "m9", "m9"], "dataset": ["d1", "d9", "d0", "d9"]})
    assert list(pair_kinds(pairs, known)) == ["known", "dataset", "model", "both"]


# ------------------------------------------------------------------------ predict / API
def test_default_pairs_are_new_datasets_times_every_model_and_new_models_times_every_dataset(
        run, new_zoo):
    models = new_zoo.models.reset_index().iloc[:1]
    datasets = new_zoo.datasets.reset_index()
    ext = run.extend(models=models, datasets=datasets, scores=_scores_for(run.zoo, new_zoo))
    pairs = ext.default_pairs()
    assert len(pairs) == 3 * 7 + 1 * 12 and not pairs.duplicated().any()
    assert ext.new_models == ("xm0",) and ext.new_datasets == ("nd0", "nd1", "nd2")
    out = run.predict(models=models, datasets=datasets, scores=_scores_for(run.zoo, new_zoo))
    assert list(out.columns) == ["model", "dataset", "predicted", "std"]
    pd.testing.assert_frame_equal(out[["model", "dataset"]], pairs)
    assert out["predicted"].between(0, 1).all()
    assert (out["std"] > 0).all() and np.isfinite(out["std"]).all()


def test_std_is_the_ensemble_std_through_the_calibration(run, new_zoo):
    args = dict(datasets=new_zoo.datasets.reset_index(), scores=_scores_for(run.zoo, new_zoo))
    raw = run.predict(**args, calibrated=False)
    cal = run.predict(**args)
    c = run.calibration["gnn"]
    assert c.reference > 0
    # the level spread of each pair's dataset, from a knn fitted here on every record
    ext = run.extend(**args)
    level = level_spreads(run.zoo, run.config, run.zoo.known_pairs(), raw, ext.zoo)
    assert (level > 0).all()
    np.testing.assert_allclose(cal["std"], np.minimum(np.sqrt(
        (c.scale * raw["std"] / c.reference) ** 2 + c.floor ** 2
        + (c.level_weight * level) ** 2), 0.5))                             # MAX_STD
    # this small zoo has too few validation datasets for a level term; with one, the run
    # computes each pair's level spread itself
    assert c.level_weight == 0.0
    run.calibration["gnn"] = replace(c, level_weight=1.5)
    try:
        np.testing.assert_allclose(run.predict(**args)["std"], np.minimum(np.sqrt(
            (c.scale * raw["std"] / c.reference) ** 2 + c.floor ** 2 + (1.5 * level) ** 2), 0.5))
    finally:
        run.calibration["gnn"] = c
    assert run.predict(**args, method="additive")["std"].isna().all()


def test_a_format_4_checkpoint_keeps_its_absolute_calibration(run, new_zoo, tmp_path):
    """Format 4 (before the reference spread) is read, and its scale multiplies the std
    itself; a format-5 calibration without its reference is a malformed entry."""
    import json

    manifest_file = run.save(tmp_path) / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    c = manifest["calibration"]["gnn"]
    assert float(c["reference"]) == run.calibration["gnn"].reference
    del c["reference"]
    manifest_file.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"a calibration entry is malformed \(KeyError"):
        tpred.load(tmp_path)
    manifest_file.write_text(json.dumps({**manifest, "format": 4}))
    old = tpred.load(tmp_path)
    assert np.isnan(old.calibration["gnn"].reference)
    args = dict(datasets=new_zoo.datasets.reset_index(), scores=_scores_for(run.zoo, new_zoo))
    raw = old.predict(**args, calibrated=False)
    np.testing.assert_allclose(old.predict(**args)["std"], np.minimum(
        np.sqrt((c["scale"] * raw["std"]) ** 2 + c["floor"] ** 2), 0.5))


def test_known_records_of_a_new_dataset_are_used_and_not_predicted(run, new_zoo):
    datasets = new_zoo.datasets.reset_index().iloc[:1]
    scores = _scores_for(run.zoo, new_zoo)
    scores = scores[scores["dataset"] == "nd0"]
    cold = run.predict(datasets=datasets, scores=scores)
    records = pd.DataFrame({"model": ["m0", "m1"], "dataset": "nd0", "accuracy": [0.99, 0.98]})
    warm = run.predict(datasets=datasets, scores=scores, records=records)
    assert list(warm["model"]) == ["m2", "m3", "m4", "m5"]  # recorded pairs are not predicted
    assert not np.allclose(warm["predicted"], cold["predicted"].iloc[2:])  # gnn uses them


def test_recommend_ranks_predicted_and_recorded_models(run, new_zoo):
    row = new_zoo.datasets.reset_index().iloc[0]
    scores = _scores_for(run.zoo, new_zoo)
    scores = scores[scores["dataset"] == "nd0"]
    records = pd.DataFrame({"model": ["m4"], "dataset": ["nd0"], "accuracy": [0.001]})
    every = run.recommend(row, k=0, scores=scores, records=records)
    assert list(every.columns) == ["rank", "model", "predicted", "std", "known"]
    assert list(every["rank"]) == [1, 2, 3, 4, 5, 6]
    assert every["predicted"].is_monotonic_decreasing
    assert every.iloc[-1].to_dict() == {"rank": 6, "model": "m4", "predicted": 0.001, "std": 0.0,
                                        "known": True}
    top = run.recommend(row, k=3, scores=scores, records=records)
    pd.testing.assert_frame_equal(top, every.iloc[:3])
    full = run.predict(datasets=row.to_frame().T, scores=scores, records=records)
    best = full.sort_values("predicted", ascending=False, kind="stable").iloc[:3]
    assert list(top["model"]) == list(best["model"])
    np.testing.assert_array_equal(top["std"], best["std"])
    # by id, with the row given as datasets=..., and as a Series named by its id
    by_id = run.recommend("nd0", k=3, datasets=row.to_frame().T, scores=scores, records=records)
    pd.testing.assert_frame_equal(by_id, top)
    named = row.drop("dataset").rename("nd0")
    pd.testing.assert_frame_equal(run.recommend(named, k=3, scores=scores, records=records), top)
    # a dataset of the run: every model recorded, so the ranking is the records'
    known = run.recommend("d3", k=2)
    assert known["known"].all() and list(known["predicted"]) == sorted(
        run.zoo.records.query("dataset == 'd3'")["accuracy"], reverse=True)[:2]


def test_rank_models_hand_made():
    zoo = Zoo.from_frames(None, None, pd.DataFrame(
        {"model": ["a", "b", "c"], "dataset": ["x", "y", "y"], "accuracy": [0.5, 0.9, 0.1]}))
    pred = pd.DataFrame({"model": ["b", "c", "a"], "dataset": ["x", "x", "y"],
                         "predicted": [0.4, 0.6, 0.5], "std": [0.1, 0.2, 0.3]})
    out = rank_models(pred, zoo, k=2)
    assert out.to_dict("list") == {
        "dataset": ["x", "x", "y", "y"], "rank": [1, 2, 1, 2], "model": ["c", "a", "b", "a"],
        "predicted": [0.6, 0.5, 0.9, 0.5], "std": [0.2, 0.0, 0.0, 0.3],
        "known": [False, True, True, False]}
    assert len(rank_models(pred, zoo, k=0)) == 6


def test_format_rankings_says_which_ranks_tie():
    zoo = Zoo.from_frames(None, None, pd.DataFrame(
        {"model": ["a", "b", "c", "d"], "dataset": ["y"] * 4, "accuracy": [0.9] * 4}))
    pred = pd.DataFrame({"model": ["d", "c", "b", "a"], "dataset": ["x"] * 4,
                         "predicted": [1.0, 0.8, 1.0, 1.0], "std": [0.0, 0.1, 0.0, 0.0]})
    ranking = rank_models(pred, zoo, k=0)
    assert ranking["model"].tolist() == ["a", "b", "d", "c"]     # the tie in model table order
    text = format_rankings(ranking)
    assert text.endswith("ranks 1-3 tie at 1.000 (exactly equal predictions, e.g. every member "
                         "at the clip to 1): their order is the model table's, not a prediction")
    assert tie_notes(ranking[ranking["model"] != "a"]) == [
        "ranks 2-3 tie at 1.000 (exactly equal predictions, e.g. every member at the clip to "
        "1): their order is the model table's, not a prediction"]
    assert tie_notes(ranking.iloc[2:]) == []                     # one of the tie, and c: none
    # recorded pairs at the same accuracy are not a tie of predictions
    assert tie_notes(ranking.assign(known=True)) == []


def test_embeddings_cover_old_and_new_nodes(run, new_zoo):
    models, datasets = run.embeddings()
    assert models.shape == (6, 16 * 3) and datasets.shape == (12, 16 * 3)
    assert np.isfinite(models.to_numpy()).all()
    _, more = run.embeddings(datasets=new_zoo.datasets.reset_index(),
                             scores=_scores_for(run.zoo, new_zoo))
    assert list(more.index[-3:]) == ["nd0", "nd1", "nd2"] and len(more) == 15
    with pytest.raises(ValueError, match=r"LinearPredictor has no node embeddings"):
        gnn_embeddings(run.ensembles["lr"][0])


def test_import_tpred_stays_light():
    code = ("import sys, tpred; heavy = [m for m in ('torch', 'pandas', 'sklearn') "
            "if m in sys.modules]; assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert tpred.load is tpred.api.load and "load" in dir(tpred)
    with pytest.raises(AttributeError, match=r"module 'tpred' has no attribute 'nope'"):
        tpred.nope  # noqa: B018


# ------------------------------------------------------------------------------ bad input
def test_a_new_id_that_collides_with_a_training_node_names_file_line_and_id(run, tmp_path):
    path = tmp_path / "datasets.csv"
    frame = run.zoo.datasets.reset_index().iloc[[0]].assign(dataset="fresh")
    pd.concat([frame, run.zoo.datasets.reset_index().iloc[[4]]]).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"datasets.csv, line 3, column 'dataset': id 'd4' is "
                                         r"already a dataset of the run's zoo"):
        run.extend(datasets=path)
    models = run.zoo.models.reset_index().iloc[[2]]
    with pytest.raises(ValueError, match=r"models DataFrame, line 2, column 'model': id 'm2' "
                                         r"is already a model"):
        run.extend(models=models)


def test_missing_feature_columns_name_the_file_and_columns(run, new_zoo, tmp_path):
    path = tmp_path / "datasets.csv"
    new_zoo.datasets.reset_index().drop(columns=["labels", "train_size"]).to_csv(path,
                                                                                 index=False)
    with pytest.raises(ValueError, match=r"datasets.csv: configured feature column\(s\) "
                                         r"\['train_size', 'labels'\] not found"):
        run.predict(datasets=path)
    with pytest.raises(ValueError, match=r"models DataFrame: configured feature column\(s\) "
                                         r"\['architecture_family'\] not found"):
        run.predict(models=new_zoo.models.drop(columns="architecture_family"))


def test_bad_metadata_values_name_line_and_column(run, new_zoo):
    bad = new_zoo.datasets.reset_index().astype({"num_classes": object})
    bad.loc[1, "num_classes"] = "many"
    with pytest.raises(ValueError, match=r"datasets DataFrame, line 3, column 'num_classes': a "
                                         r"numeric feature column must hold finite numbers "
                                         r"\(or blanks\), got 'many'"):
        run.extend(datasets=bad)


def test_extra_unknown_columns_are_ignored_with_a_warning(run, new_zoo):
    plain = new_zoo.datasets.reset_index()
    scores = _scores_for(run.zoo, new_zoo)
    with pytest.warns(UserWarning, match=r"column\(s\) \['curator'\] are not in the run's "
                                         r"datasets table; ignored"):
        extra = run.predict(datasets=plain.assign(curator="me"), scores=scores)
    pd.testing.assert_frame_equal(extra, run.predict(datasets=plain, scores=scores))


def test_unknown_categories_become_zero_features_with_a_warning(run, new_zoo):
    datasets = new_zoo.datasets.reset_index().assign(domain="x-ray")
    with pytest.warns(UserWarning, match=r"column 'domain': category \['x-ray'\] unseen in "
                                         r"training; their one-hot features are zeros"):
        ext = run.extend(datasets=datasets)
    featurizer = run.ensembles["lr"][0].dataset_inputs_.featurizer_
    names = featurizer.get_feature_names_out()
    x = featurizer.transform(ext.zoo.datasets.loc[list(ext.new_datasets)])
    onehot = np.char.startswith(names.astype(str), "cat__domain")
    assert onehot.sum() == 3 and (x[:, onehot] == 0).all()
    assert (featurizer.transform(run.zoo.datasets)[:, onehot].sum(1) == 1).all()


def test_scores_of_metrics_the_run_did_not_train_with_are_ignored_with_a_warning(run, new_zoo):
    datasets = new_zoo.datasets.reset_index()
    scores = _scores_for(run.zoo, new_zoo)
    logme = scores[scores["metric"] == "score_a"].assign(metric="logme")
    extra = pd.concat([scores, logme], ignore_index=True)
    with pytest.warns(UserWarning, match=r"metric\(s\) \['logme'\] were not in the run's scores "
                                         r"\['score_a', 'score_b'\].* 18 row\(s\) are ignored"):
        got = run.predict(datasets=datasets, scores=extra)
    pd.testing.assert_frame_equal(got, run.predict(datasets=datasets, scores=scores))


def test_new_datasets_scored_on_only_some_pairs_are_named_in_a_warning(run, new_zoo):
    datasets = new_zoo.datasets.reset_index()
    scores = _scores_for(run.zoo, new_zoo)
    with warnings.catch_warnings():
        warnings.simplefilter("error")               # every pair and metric scored: no warning
        run.extend(datasets=datasets, scores=scores)
    first, second = run.zoo.model_ids[:2]
    gone = (((scores["dataset"] == "nd0") & (scores["model"] == first))
            | ((scores["dataset"] == "nd2") & (scores["model"] == second)
               & (scores["metric"] == "score_b")))
    full = 2 * run.zoo.num_models
    with pytest.warns(PartialScoresWarning,
                      match=rf"2 new dataset\(s\) have scores for only some of "
                            rf"their model × metric pairs \({run.zoo.num_models} "
                            rf"models × \['score_a', 'score_b'\]\): nd0 "
                            rf"\({full - 2} of {full}\), nd2 \({full - 1} of "
                            rf"{full}\); the pairs without a score"):
        ext = run.extend(datasets=datasets, scores=scores[~gone])
    assert len(ext.new_scores) == len(scores) - 3          # nothing else dropped


def test_scores_and_records_must_name_known_or_new_ids_and_be_new(run, new_zoo, tmp_path):
    datasets = new_zoo.datasets.reset_index()
    scores = _scores_for(run.zoo, new_zoo)
    with pytest.raises(ValueError, match=r"scores DataFrame, line 2, column 'dataset': dataset "
                                         r"'nd0' is neither a dataset of the run nor a new"):
        run.extend(scores=scores)
    old = run.zoo.scores.iloc[[3]]
    with pytest.raises(ValueError, match=r"scores DataFrame, line 2, columns \['model', "
                                         r"'dataset', 'metric'\]: .* already has a score"):
        run.extend(scores=old)
    path = tmp_path / "known.csv"
    run.zoo.records.iloc[[5]].to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"known.csv, line 2, columns \['model', 'dataset'\]: "
                                         r"\['m0', 'd5'\] already has a record"):
        run.extend(records=path)
    bad = pd.DataFrame({"model": ["m0"], "dataset": ["nd0"], "accuracy": [1.5]})
    with pytest.raises(ValueError, match=r"records DataFrame, line 2, column 'accuracy': "
                                         r"accuracy must be a number in \[0, 1\], got '1.5'"):
        run.extend(datasets=datasets, records=bad)
    nan = scores.astype({"value": object})
    nan.loc[2, "value"] = "inf"
    with pytest.raises(ValueError, match=r"line 4, column 'value': a score must be a finite "
                                         r"number, got 'inf'"):
        run.extend(datasets=datasets, scores=nan)
    with pytest.raises(ValueError, match=r"line 2, column 'metric': empty metric name"):
        run.extend(datasets=datasets, scores=scores.assign(metric=""))
    with pytest.raises(ValueError, match=r"scores DataFrame: missing column\(s\) \['value'\]"):
        run.extend(datasets=datasets, scores=scores.drop(columns="value"))


def test_wide_records_file_is_read(run, new_zoo, tmp_path):
    path = tmp_path / "wide.csv"
    pd.DataFrame({"": ["m0", "m1"], "nd0": [0.9, ""], "nd1": ["", 0.8]}).to_csv(path,
                                                                                  index=False)
    ext = run.extend(datasets=new_zoo.datasets.reset_index(), records=path)
    assert ext.new_records.to_dict("list") == {"model": ["m0", "m1"], "dataset": ["nd0", "nd1"],
                                               "accuracy": [0.9, 0.8]}


def test_id_checks_of_metadata_frames(run, new_zoo):
    datasets = new_zoo.datasets.reset_index()
    with pytest.raises(ValueError, match=r"line 3, column 'dataset': empty id ''"):
        run.extend(datasets=datasets.assign(dataset=["nd0", "", "nd2"]))
    with pytest.raises(ValueError, match=r"duplicate \['nd0'\] \(first on line 2"):
        run.extend(datasets=datasets.assign(dataset=["nd0", "nd0", "nd2"]))
    with pytest.raises(ValueError, match=r"datasets DataFrame: missing column\(s\) "
                                         r"\['dataset'\]"):
        run.extend(datasets=datasets.drop(columns="dataset"))
    with pytest.raises(ValueError, match=r"datasets DataFrame: no rows"):
        run.extend(datasets=datasets.iloc[:0])
    with pytest.raises(TypeError, match=r"datasets must be a pandas DataFrame, a CSV path or "
                                        r"None, got int"):
        run.extend(datasets=42)
    indexed = run.extend(datasets=new_zoo.datasets)  # the id as the index works too
    assert indexed.new_datasets == ("nd0", "nd1", "nd2")


def test_pairs_method_and_recommend_errors(run, new_zoo):
    datasets = new_zoo.datasets.reset_index()
    with pytest.raises(ValueError, match=r"nothing to predict: give new models or datasets"):
        run.predict()
    with pytest.raises(ValueError, match=r"the run has no method 'mf'; it has \['additive', "):
        run.predict(datasets=datasets, method="mf")
    pairs = pd.DataFrame({"model": ["m0", "zz"], "dataset": ["nd0", "nd0"]})
    with pytest.raises(ValueError, match=r"pairs DataFrame, line 3, column 'model': model 'zz' "
                                         r"is neither a model of the run nor a new one"):
        run.predict(datasets=datasets, pairs=pairs)
    got = run.predict(datasets=datasets, pairs=pairs.iloc[:1], method="additive")
    assert len(got) == 1
    with pytest.raises(ValueError, match=r"dataset 'nope' is neither a dataset of the run nor"):
        run.recommend("nope")
    with pytest.raises(ValueError, match=r"a dataset row frame must have exactly 1 row, got 3"):
        run.recommend(datasets)
    with pytest.raises(ValueError, match=r"the dataset row has no 'dataset' id"):
        run.recommend({"domain": "photo"})
    with pytest.raises(TypeError, match=r"dataset must be an id \(str\), a Series, a mapping"):
        run.recommend(3)


# ---------------------------------------------------------------------------- the CLIs
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """`python -m tpred.train` on a tiny zoo written as CSV files."""
    folder = tmp_path_factory.mktemp("cli")
    zoo = toy_zoo(num_models=5, num_datasets=9, seed=3)
    zoo_dir = write_zoo(zoo, folder / "zoo")
    cfg = _config(name="tiny", methods=("additive", "gnn"), output_dir=str(folder / "runs"))
    values = cfg.to_dict()
    values["data"].update(root=str(zoo_dir), scores="scores.csv")
    (folder / "tiny.yaml").write_text(yaml.safe_dump(values))
    from tpred.train import main as train_main

    assert train_main(["--config", str(folder / "tiny.yaml"), "--no-plots", "--quiet"]) == 0
    return folder / "runs" / "tiny", zoo


def test_cli_end_to_end_on_a_tiny_run(trained_run, new_zoo, tmp_path, capsys):
    run_dir, zoo = trained_run
    new_zoo.datasets.reset_index().to_csv(tmp_path / "datasets.csv", index=False)
    new_zoo.models.reset_index().iloc[:1].to_csv(tmp_path / "models.csv", index=False)
    _scores_for(zoo, new_zoo).to_csv(tmp_path / "scores.csv", index=False)
    capsys.readouterr()
    out = tmp_path / "out" / "predictions.csv"
    assert predict_main(["--run", str(run_dir), "--datasets", str(tmp_path / "datasets.csv"),
                         "--models", str(tmp_path / "models.csv"), "--scores",
                         str(tmp_path / "scores.csv"), "--top-k", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    predictions = pd.read_csv(out)
    ranking = pd.read_csv(tmp_path / "out" / "predictions.ranking.csv")
    assert list(predictions.columns) == ["model", "dataset", "predicted", "std"]
    assert len(predictions) == 3 * 6 + 1 * 9
    assert (predictions["std"] > 0).all()
    assert list(ranking.columns) == ["dataset", "rank", "model", "predicted", "std", "known"]
    assert ranking.groupby("dataset").size().eq(2).all() and ranking["dataset"].nunique() == 12
    assert "== nd0 (new) ==" in printed and "±" in printed
    # the line saying which new datasets (no records) the gnn's level_after moved, and by what
    loaded = tpred.load(run_dir)
    with warnings.catch_warnings():                 # the partial-scores warnings, printed above
        warnings.simplefilter("ignore")
        moves = loaded.level_moves(loaded.extend(datasets=tmp_path / "datasets.csv",
                                                 models=tmp_path / "models.csv",
                                                 scores=tmp_path / "scores.csv"))
    assert sorted(moves.index) == sorted(new_zoo.dataset_ids) and not moves.isna().any()
    assert ("3 dataset(s) without records moved toward the level of their most similar "
            "datasets (gnn.level_after): " + ", ".join(f"{d} {v:+.3f}" for d, v in moves.items())
            in printed)
    payload = load_checkpoint(run_dir)
    assert len(payload["ensembles"]["gnn"]) == 2 and "gnn" in payload["calibration"]


def test_level_line_names_the_moved_and_the_kept_datasets():
    moves = pd.Series([0.0481, np.nan, -0.0042, 0.01], index=["b", "a", "c", "other"])
    pairs = pd.DataFrame({"model": ["m"] * 3, "dataset": ["a", "b", "c"]})
    assert level_line(moves, pairs) == (
        "2 dataset(s) without records moved toward the level of their most similar datasets "
        "(gnn.level_after): b +0.048, c -0.004; not moved, a metadata cell is blank: a")
    assert level_line(moves, pairs.iloc[1:2].replace("b", "z")) == ""
    assert level_line(moves[["a"]], pairs) == "not moved, a metadata cell is blank: a"


def test_cli_bad_input_is_one_line_and_status_2(trained_run, tmp_path, capsys):
    run_dir, zoo = trained_run
    path = tmp_path / "datasets.csv"
    zoo.datasets.reset_index().iloc[:2].to_csv(path, index=False)
    out = str(tmp_path / "p.csv")
    assert predict_main(["--run", str(run_dir), "--datasets", str(path), "--out", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(PROG_ERROR)
    assert "datasets.csv, line 2, column 'dataset': id 'd0' is already a dataset" in err[0]
    assert predict_main(["--run", str(tmp_path), "--datasets", str(path), "--out", out]) == 2
    assert "no checkpoint here" in capsys.readouterr().err
    assert predict_main(["--run", str(run_dir), "--out", out]) == 2
    assert "nothing to predict" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()


def test_cli_prints_warnings_for_ignored_columns(trained_run, new_zoo, tmp_path, capsys):
    run_dir, _ = trained_run
    path = tmp_path / "datasets.csv"
    new_zoo.datasets.reset_index().assign(notes="x").to_csv(path, index=False)
    assert predict_main(["--run", str(run_dir), "--datasets", str(path), "--method",
                         "additive", "--out", str(tmp_path / "p.csv"), "--quiet"]) == 0
    assert "warning: " in capsys.readouterr().err
    assert pd.read_csv(tmp_path / "p.csv")["std"].isna().all()


def test_extension_of_nothing_is_empty(run):
    ext = run.extend()
    assert isinstance(ext, Extension) and ext.is_empty and ext.zoo.num_datasets == 12
