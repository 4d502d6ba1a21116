"""`python -m tpred.score` and `tpred.scores.table` end to end on a tiny folder of feature files."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import tpred.parallel
import tpred.scores.table as table_mod
from tpred.data.tables import read_scores
from tpred.score import main
from tpred.scores import METRICS, logme, ncti_combine, ncti_components
from tpred.scores.registry import compute_pair
from tpred.scores.table import (
    COLUMNS,
    ERROR_COLUMNS,
    components_path,
    errors_path,
    score_arrays,
    score_directory,
)

N, D, C, CS = 80, 64, 3, 4  # NCTI's PCA(64) needs N, D >= 64
MODELS, DATASETS = ("m1", "m2"), ("d1", "d2", "d3")
NO_PROBS = ("m2", "d3")  # this pair's file has no `probs`: leep and nce cannot score it


def make_pair(seed: int, quality: float, with_probs: bool = True) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(N) % C
    latent = rng.normal(size=(N, 4)) + quality * np.eye(C, 4)[y]                 # [N, 4]
    features = latent @ rng.normal(size=(4, D)) + 0.1 * rng.normal(size=(N, D))  # [N, D]
    arrays = {"features": features.astype(np.float32), "labels": y}
    if with_probs:
        logits = rng.normal(size=(N, CS)) + quality * np.eye(C, CS)[y]          # [N, Cs]
        arrays["probs"] = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return arrays


def write_model(root, model: str, quality: float, datasets=DATASETS) -> None:
    (root / model).mkdir(parents=True, exist_ok=True)
    for j, dataset in enumerate(datasets):
        seed = 100 * int(model[1:]) + j
        np.savez(root / model / f"{dataset}.npz",
                 **make_pair(seed, quality, with_probs=(model, dataset) != NO_PROBS))


@pytest.fixture
def feature_dir(tmp_path):
    """2 models x 3 datasets; m2's features separate the classes better."""
    root = tmp_path / "features"
    for model, quality in zip(MODELS, (0.5, 2.0), strict=True):
        write_model(root, model, quality)
    return root


def load(root, model, dataset):
    with np.load(root / model / f"{dataset}.npz") as npz:
        return {k: npz[k] for k in npz.files}


def read(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"model": str, "dataset": str, "metric": str})


def value(df, model, dataset, metric) -> float:
    row = df[(df.model == model) & (df.dataset == dataset) & (df.metric == metric)]
    assert len(row) == 1, (model, dataset, metric)
    return float(row["value"].iloc[0])


class CountingCompute:
    """Stand-in for `compute_pair` inside table.py that records the pairs it is asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, name, features, labels, probs=None, random_state=None):
        self.calls.append(name)
        return compute_pair(name, features, labels, probs, random_state=random_state)


# ------------------------------------------------------------------------------ end to end
def test_cli_scores_every_pair_and_lists_what_it_cannot(feature_dir, tmp_path, capsys):
    out = tmp_path / "scores.csv"
    assert main(["--features", str(feature_dir), "--out", str(out),
                 "--metrics", "logme,leep,nce,ncti", "--no-progress"]) == 0
    scores, errors = read(out), read(errors_path(out))
    assert list(scores.columns) == COLUMNS and list(errors.columns) == ERROR_COLUMNS
    assert len(scores) == 2 * 3 * 4 - 2  # every pair x metric but leep/nce of the probs-less pair
    assert sorted(errors[["model", "dataset", "metric"]].itertuples(index=False, name=None)) == [
        ("m2", "d3", "leep"), ("m2", "d3", "nce")]
    assert errors["reason"].str.contains("needs source-head probabilities 'probs'").all()
    assert "24 requested, 0 already scored, 22 computed; 2 error(s)" in capsys.readouterr().err

    read_back = read_scores(out, MODELS, DATASETS)  # the format tpred.data reads
    pd.testing.assert_frame_equal(read_back[COLUMNS].astype({c: str for c in COLUMNS[:3]}),
                                  scores.astype({c: str for c in COLUMNS[:3]}))
    arrays = load(feature_dir, "m1", "d2")  # the written value is the metric's, to the last bit
    assert value(scores, "m1", "d2", "logme") == logme(arrays["features"], arrays["labels"])
    assert value(scores, "m1", "d2", "nce") == compute_pair("nce", None, arrays["labels"],
                                                            arrays["probs"])


def test_ncti_is_combined_over_the_models_of_each_dataset(feature_dir, tmp_path):
    scores = score_directory(feature_dir, tmp_path / "s.csv", ["ncti"], progress=False)
    for dataset in DATASETS:
        comps = []
        for model in MODELS:
            arrays = load(feature_dir, model, dataset)
            comps.append(ncti_components(arrays["features"], arrays["labels"], random_state=0))
        expected = ncti_combine(comps)
        got = [value(scores, model, dataset, "ncti") for model in MODELS]
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    stored = read(components_path(tmp_path / "s.csv"))
    assert len(stored) == 2 * 3 * len(comps[0])  # every pair's components, for a resumed run


def test_corrupt_and_invalid_files_are_listed_while_the_rest_completes(feature_dir, tmp_path):
    (feature_dir / "m1" / "d4.npz").write_bytes(b"PK\x03\x04 this is not a zip archive")
    np.savez(feature_dir / "m2" / "d4.npz", features=np.zeros((N, D)))  # no labels
    one = make_pair(7, 1.0)
    one["labels"] = one["labels"].copy()
    one["labels"][0] = 9  # a class with one sample
    np.savez(feature_dir / "m2" / "d5.npz", **one)
    (feature_dir / "m1" / "d5.npz").write_bytes(b"no magic bytes at all")
    np.savez(feature_dir / "m1" / "d6.npz", features=np.array([{}, 1], dtype=object),
             labels=np.arange(2))  # readable only with pickle, which tpred never allows
    (feature_dir / "m2" / "notes.txt").write_text("not a feature file")  # ignored
    out = tmp_path / "scores.csv"
    with pytest.warns(UserWarning, match=r"10 pair\(s\) x metric\(s\) could not be scored"):
        scores = score_directory(feature_dir, out, "logme,ncti", progress=False)
    errors = read(errors_path(out)).set_index(["model", "dataset", "metric"])["reason"]
    assert len(errors) == 10
    assert errors["m1", "d4", "logme"].startswith(f"{feature_dir / 'm1' / 'd4.npz'}: unreadable "
                                                  ".npz (BadZipFile")
    assert errors["m1", "d5", "ncti"] == (f"{feature_dir / 'm1' / 'd5.npz'}: not an .npz file "
                                          r"(a zip archive starts with b'PK\x03\x04', this "
                                          "one with b'no m')")
    assert errors["m1", "d6", "logme"].endswith("d6.npz: unreadable .npz (Object arrays cannot "
                                                "be loaded when allow_pickle=False)")
    assert errors["m2", "d4", "ncti"].endswith("missing array(s) ['labels']; found ['features']")
    for metric in ("logme", "ncti"):  # the metric's own message about the one-sample class
        assert re.match(r"ValueError: .*class.*9", errors["m2", "d5", metric])
    summary = scores.attrs["summary"]
    assert (summary.num_pairs, summary.num_computed, summary.num_errors) == (11, 12, 10)
    assert len(scores) == 2 * 3 * 2  # the six valid pairs, both metrics


def test_a_dataset_with_one_model_cannot_be_ncti_combined(tmp_path):
    root = tmp_path / "features"
    write_model(root, "m1", 1.0, datasets=("solo",))
    with pytest.warns(UserWarning, match="could not be scored"):
        scores = score_directory(root, tmp_path / "s.csv", ["ncti"], progress=False)
    errors = read(errors_path(tmp_path / "s.csv"))
    assert scores.empty and errors["metric"].tolist() == ["ncti"]
    assert errors["reason"].iloc[0].startswith("combine over 1 model(s)")


def test_resumed_run_computes_nothing_new(feature_dir, tmp_path, monkeypatch):
    out = tmp_path / "scores.csv"
    first = score_directory(feature_dir, out, ["logme", "ncti"], progress=False)
    text = out.read_text()

    def forbidden(*args, **kwargs):
        raise AssertionError("a resumed run recomputed a stored score")

    monkeypatch.setattr(table_mod, "compute_pair", forbidden)
    again = score_directory(feature_dir, out, ["logme", "ncti"], progress=False)
    assert (again.attrs["summary"].num_skipped, again.attrs["summary"].num_computed) == (12, 0)
    pd.testing.assert_frame_equal(again, first)
    assert out.read_text() == text


def test_resume_with_a_new_model_scores_only_it_and_recombines_ncti(feature_dir, tmp_path,
                                                                     monkeypatch):
    out = tmp_path / "scores.csv"
    first = score_directory(feature_dir, out, ["logme", "ncti"], progress=False)
    write_model(feature_dir, "m3", 1.0)
    counting = CountingCompute()
    monkeypatch.setattr(table_mod, "compute_pair", counting)
    second = score_directory(feature_dir, out, ["logme", "ncti"], progress=False)
    assert sorted(counting.calls) == ["logme"] * 3 + ["ncti"] * 3  # m3's three pairs only
    assert len(second) == 3 * 3 * 2
    assert value(second, "m1", "d1", "logme") == value(first, "m1", "d1", "logme")
    comps = [ncti_components(load(feature_dir, m, "d1")["features"],
                             load(feature_dir, m, "d1")["labels"], random_state=0)
             for m in ("m1", "m2", "m3")]
    np.testing.assert_allclose([value(second, m, "d1", "ncti") for m in ("m1", "m2", "m3")],
                               ncti_combine(comps), rtol=1e-12)


def test_an_interrupted_run_keeps_its_finished_pairs(feature_dir, tmp_path, monkeypatch):
    out = tmp_path / "scores.csv"
    calls = []

    def interrupted(name, *args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(name)
        return compute_pair(name, *args, **kwargs)

    monkeypatch.setattr(table_mod, "compute_pair", interrupted)
    with pytest.raises(KeyboardInterrupt):
        score_directory(feature_dir, out, ["logme"], progress=False)
    assert len(read(out)) == 2  # appended as they finished
    monkeypatch.setattr(table_mod, "compute_pair", CountingCompute())
    scores = score_directory(feature_dir, out, ["logme"], progress=False)
    assert len(table_mod.compute_pair.calls) == 4 and len(scores) == 6


def test_a_non_finite_value_is_an_error_with_the_metric_warning(feature_dir, tmp_path,
                                                                monkeypatch):
    def undefined(name, *args, **kwargs):
        import warnings
        warnings.warn("constant features", UserWarning, stacklevel=1)
        return float("nan")

    monkeypatch.setattr(table_mod, "compute_pair", undefined)
    with pytest.warns(UserWarning, match="could not be scored"):
        score_directory(feature_dir, tmp_path / "s.csv", ["hscore"], progress=False)
    errors = read(errors_path(tmp_path / "s.csv"))
    assert len(errors) == 6
    assert (errors["reason"] == "non-finite value nan (constant features)").all()
    assert read(tmp_path / "s.csv").empty


def test_warnings_of_a_finite_score_are_passed_on_naming_the_pair(feature_dir, tmp_path,
                                                                  monkeypatch):
    def warns(name, *args, **kwargs):
        import warnings
        warnings.warn("a constant column", UserWarning, stacklevel=1)
        return 0.5

    monkeypatch.setattr(table_mod, "compute_pair", warns)
    with pytest.warns(UserWarning) as caught:
        scores = score_directory(feature_dir, tmp_path / "s.csv", ["hscore"], progress=False)
    assert sorted(str(w.message) for w in caught) == [
        f"{m}/{d} hscore: a constant column" for m in MODELS for d in DATASETS]
    assert (scores["value"] == 0.5).all() and len(scores) == 6


def test_two_jobs_give_the_serial_table(feature_dir, tmp_path):
    # metrics whose modules import no scikit-learn: the two loky workers start fast
    serial = score_directory(feature_dir, tmp_path / "a.csv", ["logme", "gbc"], progress=False)
    parallel = score_directory(feature_dir, tmp_path / "b.csv", ["logme", "gbc"], jobs=2,
                               progress=False)
    pd.testing.assert_frame_equal(parallel, serial)


def test_score_arrays_matches_score_directory(feature_dir, tmp_path):
    pairs = {(m, d): tuple(load(feature_dir, m, d).get(k) for k in ("features", "labels", "probs"))
             for m in MODELS for d in DATASETS}
    pairs["m1", "d1"] = pairs["m1", "d1"][:2]  # (features, labels) is enough too
    scores, errors = score_arrays(pairs, ["logme", "leep", "ncti"])
    with pytest.warns(UserWarning, match="could not be scored"):
        on_disk = score_directory(feature_dir, tmp_path / "s.csv", ["logme", "leep", "ncti"],
                                  progress=False)
    expected = on_disk[~((on_disk.model == "m1") & (on_disk.dataset == "d1")
                         & (on_disk.metric == "leep"))].reset_index(drop=True)
    pd.testing.assert_frame_equal(scores, expected)
    assert sorted(zip(errors.model, errors.dataset, strict=True)) == [("m1", "d1"), ("m2", "d3")]


# ------------------------------------------------------------------------------ bad input
def test_cli_exits_2_on_a_missing_directory(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--features", str(tmp_path / "nope"), "--out", str(tmp_path / "s.csv")])
    assert exc.value.code == 2
    assert "nope' does not exist or is not a directory" in capsys.readouterr().err


@pytest.mark.parametrize(("option", "message"), [
    (["--metrics", "logme,logmee"], "Could not resolve 'logmee' among choices"),
    (["--metrics", " , "], "give at least one metric name"),
    (["--jobs", "0"], r"jobs must be a positive int or -1 \(all cores\), got 0"),
    (["--backend", "spark"], "invalid choice: 'spark'"),
])
def test_cli_exits_2_on_bad_options(feature_dir, tmp_path, capsys, option, message):
    with pytest.raises(SystemExit) as exc:
        main(["--features", str(feature_dir), "--out", str(tmp_path / "s.csv"), *option])
    assert exc.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_dask_and_ray_need_their_packages(feature_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(tpred.parallel.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match=r"backend 'dask' needs the 'distributed' package"):
        score_directory(feature_dir, tmp_path / "s.csv", ["logme"], backend="dask")
    with pytest.raises(ValueError, match=r"backend 'ray' needs the 'ray' package"):
        score_directory(feature_dir, tmp_path / "s.csv", ["logme"], backend="ray")
    with pytest.raises(ValueError, match=r"Could not resolve backend 'spark' among choices "
                                         r"\{loky, dask, ray\}"):
        score_arrays({}, ["logme"], backend="spark")


def test_an_empty_directory_is_an_error(tmp_path):
    (tmp_path / "m1").mkdir()
    with pytest.raises(ValueError, match="holds no <model>/<dataset>.npz file"):
        score_directory(tmp_path, tmp_path / "s.csv", ["logme"])


@pytest.mark.parametrize(("text", "message"), [
    ("model,dataset,value\n", r"missing column\(s\) \['metric'\]"),
    ("model,dataset,metric,value\nm1,d1,logme,high\n", "line 2: column 'value' must be a number"),
    ("model,dataset,metric,value\nm1,d1,logme,nan\n", "line 2: column 'value' must be a number"),
    ("model,dataset,metric,value\nm1,d1,logme,1\nm1,d1,logme,2\n",
     r"line 3: duplicate model/dataset/metric \['m1', 'd1', 'logme'\]"),
])
def test_an_existing_out_file_must_be_a_scores_table(feature_dir, tmp_path, text, message):
    (tmp_path / "s.csv").write_text(text)
    with pytest.raises(ValueError, match=message):
        score_directory(feature_dir, tmp_path / "s.csv", ["logme"])


def test_an_existing_components_file_must_have_integer_components(feature_dir, tmp_path):
    components_path(tmp_path / "s.csv").write_text(
        "model,dataset,metric,component,value\nm1,d1,ncti,first,1.0\n")
    with pytest.raises(ValueError, match="line 2: column 'component' must be an integer >= 0"):
        score_directory(feature_dir, tmp_path / "s.csv", ["ncti"])


def test_score_arrays_rejects_values_that_are_not_array_tuples():
    with pytest.raises(ValueError, match=r"must be a tuple \(features, labels\) or \(features, "
                                         r"labels, probs\), got tuple of length 1"):
        score_arrays({("m", "d"): (np.zeros((4, 2)),)}, ["logme"])
    with pytest.raises(ValueError, match=r"must be a tuple \(features, labels\[, probs\]\), got "
                                         "dict"):
        score_arrays({("m", "d"): {"features": 1}}, ["logme"])


def test_default_metrics_are_every_base_metric(feature_dir, tmp_path, monkeypatch):
    seen = {}

    def fake(features_dir, out_csv, metrics, **kwargs):
        seen["metrics"] = metrics
        raise ValueError("stop here")

    monkeypatch.setattr("tpred.score.score_directory", fake)
    with pytest.raises(SystemExit):
        main(["--features", str(feature_dir), "--out", str(tmp_path / "s.csv")])
    assert seen["metrics"].split(",") == list(METRICS)
