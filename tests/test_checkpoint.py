"""The checkpoint format: no code runs when a checkpoint is read; exact round trips; pickles
only with trust (`tpred.checkpoint`, `tpred.load`, `python -m tpred.predict --trust`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

import tpred
from tpred.api import Run
from tpred.checkpoint import (
    NUM_CHECK_PAIRS,
    fit_all,
    read_table,
    save_checkpoint,
    write_table,
)
from tpred.config import GNNConfig, ProtocolConfig, TextConfig, TrainConfig
from tpred.errors import NotFittedError, UntrustedFileError
from tpred.models.gnn import GNNPredictor
from tpred.predict import main as predict_main
from tpred.testing import TOY_DATASET_FEATURES, TOY_MODEL_FEATURES, toy_zoo

FAST = GNNConfig(hidden_channels=16, heads=2, max_epochs=20, patience=5, num_threads=1,
                 ensemble=2)


def _config(**kw) -> TrainConfig:
    return TrainConfig(model_features=TOY_MODEL_FEATURES, dataset_features=TOY_DATASET_FEATURES,
                       text=TextConfig(encoder="hash", cache_dir=None), protocols=(),
                       seeds=(0, 1), gnn=FAST, protocol=ProtocolConfig(num_folds=3), **kw)


class _Payload:
    """Unpickling this creates a file: what a hostile pickle could do instead."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return open, (str(self.target), "w")


@pytest.fixture(scope="module")
def zoo():
    return toy_zoo(num_models=5, num_datasets=10, seed=4)


@pytest.fixture(scope="module")
def saved(zoo, tmp_path_factory):
    """A run with every kind of member (two-network gnn per seed, deterministic baselines),
    saved; returns (run in memory, run folder)."""
    cfg = _config()
    methods = ["additive", "lr", "mf", "knn", "gnn", "score:score_a"]
    run = Run(cfg, zoo, fit_all(zoo, cfg, methods, progress=False))
    folder = tmp_path_factory.mktemp("saved")
    run.save(folder)
    return run, folder


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / "run"))


# ----------------------------------------------------------------------------- the format
def test_a_checkpoint_holds_only_json_csv_and_safetensors(saved):
    _, folder = saved
    files = sorted(p.relative_to(folder / "checkpoint").as_posix()
                   for p in (folder / "checkpoint").rglob("*") if p.is_file())
    assert files == ["check_pairs.csv", "manifest.json", "train_pairs.csv", "weights.safetensors",
                     "zoo/datasets.csv", "zoo/models.csv", "zoo/records.csv", "zoo/scores.csv"]
    manifest = json.loads((folder / "checkpoint" / "manifest.json").read_text())
    assert manifest["format"] == 6 and list(manifest["methods"]) == [
        "additive", "lr", "mf", "knn", "gnn", "score:score_a"]
    assert [e["seed"] for e in manifest["methods"]["gnn"]] == [0, 1]
    assert manifest["methods"]["lr"] == [{"seed": None, "state": None}]
    weights = load_file(str(folder / "checkpoint" / "weights.safetensors"))
    # two seeds x two networks x five cross-validation folds each (the toy zoo is small enough
    # to cross-validate: `GNNConfig.cv_max_records`); the check predictions of every member
    assert {k.split(".")[0] for k in weights if k.startswith("gnn/")} == {
        f"gnn/{s}/{k}" for s in (0, 1) for k in [*range(2 * 5), "epochs"]}
    assert weights["check/gnn/0"].shape == (min(NUM_CHECK_PAIRS, 50),)


def test_predictions_after_loading_equal_those_before_saving(saved, zoo):
    run, folder = saved
    loaded = tpred.load(folder)
    pairs = zoo.all_pairs()
    for method in run.methods:
        for before, after in zip(run.ensembles[method], loaded.ensembles[method], strict=True):
            np.testing.assert_array_equal(after.predict(pairs, zoo), before.predict(pairs, zoo))
    new = toy_zoo(num_models=2, num_datasets=2, seed=9).datasets.rename(index="new{}".format)
    grid = pd.MultiIndex.from_product([zoo.model_ids, new.index], names=["model", "dataset"])
    scores = pd.concat([grid.to_frame(index=False).assign(metric=m, value=np.arange(10.0) * k)
                        for k, m in enumerate(zoo.score_metrics, 1)], ignore_index=True)
    for method in run.methods:
        pd.testing.assert_frame_equal(loaded.predict(datasets=new, scores=scores, method=method),
                                      run.predict(datasets=new, scores=scores, method=method))


def test_members_that_no_longer_predict_what_they_did_are_refused(saved, tmp_path):
    folder = _copy(saved[1], tmp_path)
    records = folder / "checkpoint" / "zoo" / "records.csv"
    table = pd.read_csv(records, dtype=str, keep_default_na=False)
    table.loc[0, "accuracy"] = "0.123"  # a changed record: every method fits another model
    table.to_csv(records, index=False)
    with pytest.raises(ValueError, match=r"method 'additive' member 0 re-derived with tpred "
                                         r"\S+ predicts up to \S+ away from what it predicted "
                                         r"when saved .* retrain the run"):
        tpred.load(folder)


def test_a_checkpoint_saved_before_a_gnn_field_existed_loads_as_it_was(zoo, tmp_path):
    """A saved config lacks the gnn fields added after it (`GNN_ADDED_FIELDS`): they take the
    values that rebuild its networks, not today's defaults."""
    from dataclasses import replace

    from tpred.config import GNN_ADDED_FIELDS
    cfg = replace(_config(), seeds=(0,),
                  gnn=replace(FAST, ensemble=1, **GNN_ADDED_FIELDS))
    run = Run(cfg, zoo, fit_all(zoo, cfg, ["gnn"], progress=False))
    run.save(tmp_path)
    file = tmp_path / "checkpoint" / "manifest.json"
    manifest = json.loads(file.read_text())
    for key in GNN_ADDED_FIELDS:
        del manifest["config"]["gnn"][key]
    file.write_text(json.dumps(manifest))
    assert GNNConfig().attention != GNN_ADDED_FIELDS["attention"]   # the default differs
    loaded = tpred.load(tmp_path)                                   # its check predictions pass
    assert loaded.config.gnn.attention == GNN_ADDED_FIELDS["attention"]
    pairs = zoo.all_pairs()
    np.testing.assert_array_equal(loaded.ensembles["gnn"][0].predict(pairs, zoo),
                                  run.ensembles["gnn"][0].predict(pairs, zoo))
    # an old pickled predictor's config, unpickled: the same values
    state = {k: v for k, v in GNNConfig().__dict__.items() if k not in GNN_ADDED_FIELDS}
    old = GNNConfig.__new__(GNNConfig)
    old.__setstate__(state)
    assert {k: getattr(old, k) for k in GNN_ADDED_FIELDS} == GNN_ADDED_FIELDS


def test_a_damaged_checkpoint_is_a_clear_error(saved, tmp_path):
    folder = _copy(saved[1], tmp_path)
    ckpt = folder / "checkpoint"
    manifest = json.loads((ckpt / "manifest.json").read_text())

    def write(**changes):
        (ckpt / "manifest.json").write_text(json.dumps({**manifest, **changes}))

    write(format=7)
    with pytest.raises(ValueError, match=r"manifest.json: not a tpred checkpoint of format 4 "
                                         r"or 5 or 6 \(found 7\)"):
        tpred.load(folder)
    (ckpt / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"manifest.json: not a readable checkpoint manifest"):
        tpred.load(folder)
    write(weights=None, check_atol=None)
    del_keys = {k: v for k, v in manifest.items() if k != "seeds"}
    (ckpt / "manifest.json").write_text(json.dumps(del_keys))
    with pytest.raises(ValueError, match=r"a format-6 manifest lacks \['seeds'\]"):
        tpred.load(folder)
    write(tables={k: v for k, v in manifest["tables"].items() if k != "scores"})
    with pytest.raises(ValueError, match=r"'tables' lacks \['scores'\]"):
        tpred.load(folder)
    write(calibration={"gnn": {"scale": 1.0}})
    with pytest.raises(ValueError, match=r"a calibration entry is malformed \(KeyError"):
        tpred.load(folder)
    gnn_state = [{"seed": 0, "state": "nothing/"}]
    write(methods={"gnn": gnn_state})
    with pytest.raises(ValueError, match=r"method 'gnn' member 0: no learned state in "
                                         r"weights.safetensors to restore it from"):
        tpred.load(folder)
    write()
    weights = load_file(str(ckpt / "weights.safetensors"))
    save_file({k: v for k, v in weights.items() if k != "check/lr/0"},
              str(ckpt / "weights.safetensors"))
    with pytest.raises(ValueError, match=r"method 'lr' member 0: no saved check predictions"):
        tpred.load(folder)
    (ckpt / "weights.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"weights.safetensors: not a readable safetensors"):
        tpred.load(folder)
    (ckpt / "zoo" / "records.csv").write_text("model,dataset,accuracy\nm0,d0,2.0\n")
    manifest["tables"]["records"]["missing"] = {}
    write()
    with pytest.raises(ValueError, match=r"checkpoint/zoo: not the tables of a zoo \(records, "
                                         r"row 0: accuracy must be a number in \[0, 1\]"):
        tpred.load(folder)


def test_save_refuses_members_the_config_would_not_rebuild(zoo, tmp_path):
    cfg = _config()
    members = fit_all(zoo, cfg, ["additive"], progress=False)["additive"]
    with pytest.raises(ValueError, match=r"member 0 of 'lr' is a AdditivePredictor, but "
                                         r"make_predictor\('lr', cfg\) builds a LinearPredictor"):
        save_checkpoint(tmp_path / "c", cfg, zoo, {"lr": members})
    assert not (tmp_path / "c").exists()


def test_saving_again_replaces_the_checkpoint(zoo, tmp_path):
    cfg = _config()
    run = Run(cfg, zoo, fit_all(zoo, cfg, ["additive"], progress=False))
    run.save(tmp_path)
    run.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
    assert tpred.load(tmp_path).methods == ["additive"]


# --------------------------------------------------------------------- pickles need trust
def test_a_pickle_that_would_run_code_is_refused_without_trust(tmp_path, capsys):
    """The issue's test: unpickling would create a file; without trust nothing is created."""
    target = tmp_path / "created-by-unpickling"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    joblib.dump({"format": 3, "payload": _Payload(target)}, run_dir / "checkpoint.pkl")
    with pytest.raises(UntrustedFileError, match=r"checkpoint.pkl: a pickle file .* unpickling "
                                                 r"runs whatever code the file holds, so tpred "
                                                 r"loads it only with --trust \(trust=True\)"):
        tpred.load(run_dir)
    assert not target.exists()
    out = tmp_path / "p.csv"
    assert predict_main(["--run", str(run_dir), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "a pickle file" in err and "--trust" in err and len(err.strip().splitlines()) == 1
    assert not target.exists() and not out.exists()
    # with trust the pickle runs (that is what trusting it means), then is refused as foreign
    with pytest.raises(ValueError, match=r"a format-3 checkpoint lacks \['config', 'zoo', "):
        tpred.load(run_dir, trust=True)
    assert target.exists()


def test_an_old_pickle_checkpoint_loads_with_trust_and_converts(saved, tmp_path, zoo):
    run, _ = saved
    old = tmp_path / "old"
    old.mkdir()
    joblib.dump({"format": 3, "tpred_version": "0.1.0", "config": run.config.to_dict(),
                 "zoo": run.zoo, "seeds": list(run.config.seeds), "ensembles": run.ensembles,
                 "calibration": {}}, old / "checkpoint.pkl")
    with pytest.raises(UntrustedFileError, match=r"--trust"):
        tpred.load(old)
    trusted = tpred.load(old, trust=True)
    pairs = zoo.all_pairs()
    np.testing.assert_array_equal(trusted.ensembles["gnn"][1].predict(pairs),
                                  run.ensembles["gnn"][1].predict(pairs))
    trusted.save(tmp_path / "new")
    converted = tpred.load(tmp_path / "new")
    np.testing.assert_array_equal(converted.ensembles["gnn"][1].predict(pairs),
                                  run.ensembles["gnn"][1].predict(pairs))


def test_an_older_pickle_format_is_refused_with_a_retrain_hint(saved, tmp_path):
    run, _ = saved
    joblib.dump({"format": 2, "tpred_version": "0.1.0", "config": run.config.to_dict(),
                 "zoo": run.zoo, "ensembles": {}, "calibration": {}},
                tmp_path / "checkpoint.pkl")
    with pytest.raises(ValueError, match=r"of format \[3\] \(found 2; a checkpoint of an older "
                                         r"tpred must be retrained"):
        tpred.load(tmp_path, trust=True)


# ---------------------------------------------------------------------------- the gnn
def test_gnn_restore_checks_the_weights_it_is_given(saved, zoo):
    run, _ = saved
    fitted = run.ensembles["gnn"][0]
    state = fitted.learned_state()
    fresh = GNNPredictor(FAST, TOY_MODEL_FEATURES, TOY_DATASET_FEATURES,
                         encoder=fitted.encoder)
    with pytest.raises(NotFittedError, match=r"GNNPredictor is not fitted"):
        fresh.learned_state()
    n = len(fitted.members_)
    with pytest.raises(ValueError, match=rf"unexpected weight '{n}.decoder.x' for {n} networks"):
        fresh.restore(zoo, zoo.known_pairs(), {**state, f"{n}.decoder.x": torch.zeros(1)})
    bad = {k: (torch.zeros(3) if i == 0 else v) for i, (k, v) in enumerate(state.items())}
    with pytest.raises(ValueError, match=r"the weights of member 0 do not fit this network"):
        fresh.restore(zoo, zoo.known_pairs(), bad)
    with pytest.raises(ValueError, match=r"GNNPredictor.restore: train_pairs is empty"):
        fresh.restore(zoo, zoo.known_pairs().iloc[:0], state)
    fresh.restore(zoo, zoo.known_pairs(), state)
    assert fresh.epochs_ == fitted.epochs_
    np.testing.assert_array_equal(fresh.predict(zoo.known_pairs()),
                                  fitted.predict(zoo.known_pairs()))


# ---------------------------------------------------------------------------- exact tables
_text = st.one_of(st.just(np.nan), st.text(alphabet=st.characters(blacklist_categories=["Cs"]),
                                     max_size=8))
_float = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(0.1 + 0.2))


@settings(max_examples=30, deadline=None)
@given(rows=st.lists(st.tuples(_float, st.integers(-2**62, 2**62), st.booleans(), _text),
                     min_size=1, max_size=6))
def test_tables_round_trip_exactly(rows, tmp_path_factory):
    path = tmp_path_factory.mktemp("t") / "t.csv"
    frame = pd.DataFrame({
        "x": np.array([r[0] for r in rows], dtype=np.float64),
        "n": np.array([r[1] for r in rows], dtype=np.int64),
        "b": np.array([r[2] for r in rows], dtype=bool),
        "s": pd.Series([r[3] for r in rows], dtype=object)})
    schema = write_table(frame, path)
    back = read_table(path, schema)
    pd.testing.assert_frame_equal(back, frame)
    np.testing.assert_array_equal(back["x"].to_numpy().view(np.int64)[~np.isnan(frame["x"])],
                                  frame["x"].to_numpy().view(np.int64)[~np.isnan(frame["x"])])


def test_read_table_names_file_and_column(tmp_path):
    path = tmp_path / "t.csv"
    schema = write_table(pd.DataFrame({"x": [1.5], "n": [2], "b": [True]}), path)
    with pytest.raises(ValueError, match=r"t.csv: columns \['x', 'n', 'b'\] differ from the "
                                         r"manifest's \['x'\]"):
        read_table(path, {**schema, "columns": [["x", "float"]]})
    path.write_text("x,n,b\n1.5,2,maybe\n")
    with pytest.raises(ValueError, match=r"t.csv, column 'b': does not hold bool values as the "
                                         r"manifest says \(not a bool: 'maybe'\)"):
        read_table(path, schema)
    path.write_text("x,n,b\nabc,2,True\n")
    with pytest.raises(ValueError, match=r"column 'x': does not hold float values"):
        read_table(path, schema)
    with pytest.raises(ValueError, match=r"nope.csv: not a readable table \(FileNotFoundError"):
        read_table(tmp_path / "nope.csv", schema)
