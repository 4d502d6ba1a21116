"""A real zoo is incomplete: a "messy" slice of the embedded digits zoo trains and predicts.

The messy zoo: 8 models x 16 datasets of data/digits-zoo; 20 % of the numeric and categorical
metadata cells blank, 50 % of the score rows deleted at random, 5 % of the records repeated
with a different accuracy. Also: partial scores, a failing method, run folders, what
`tpred.predict` says it loaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tpred.config import TrainConfig
from tpred.evaluation.report import format_table
from tpred.evaluation.run import evaluate
from tpred.predict import main as predict_main
from tpred.testing import toy_zoo
from tpred.train import REPO_ROOT
from tpred.train import main as train_main

DIGITS = REPO_ROOT / "data" / "digits-zoo"
METRICS = ("logme", "leep", "hscore_shrinkage")
ALL_METHODS = ["additive", "zmean", "lr", "mf", "knn", "score", "gnn"]


def _blank(frame: pd.DataFrame, columns: list[str], rng: np.random.Generator) -> pd.DataFrame:
    frame = frame.copy()
    for col in columns:
        frame[col] = frame[col].astype(object)
        frame.loc[rng.random(len(frame)) < 0.2, col] = ""
    return frame


@pytest.fixture(scope="module")
def messy(tmp_path_factory) -> dict:
    """The messy zoo's CSV files, a config for it, and new rows with blanks for predicting."""
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("messy")
    base = yaml.safe_load((REPO_ROOT / "configs" / "default.yaml").read_text())
    mf, df = base["model_features"], base["dataset_features"]
    models = pd.read_csv(DIGITS / "models.csv", dtype=str, keep_default_na=False)
    datasets = pd.read_csv(DIGITS / "datasets.csv", dtype=str, keep_default_na=False)
    models, new_models = models.iloc[::2].iloc[:8], models.iloc[1::2].iloc[:2]
    datasets, new_datasets = datasets.iloc[::10].iloc[:16], datasets.iloc[5::10].iloc[:3]
    models = _blank(models, mf["numeric"] + mf["categorical"], rng)
    datasets = _blank(datasets, df["numeric"] + df["categorical"], rng)
    assert (models == "").to_numpy().any() and (datasets == "").to_numpy().any()
    records = pd.read_csv(DIGITS / "records.csv")
    records = records[records["model"].isin(models["model"])
                      & records["dataset"].isin(datasets["dataset"])]
    repeat = records.sample(frac=0.05, random_state=0)
    repeat = repeat.assign(accuracy=(repeat["accuracy"] + 0.03).clip(0, 1))
    records = pd.concat([records, repeat]).sample(frac=1.0, random_state=1)
    scores = pd.read_csv(DIGITS / "scores.csv")
    scores = scores[scores["model"].isin(models["model"])
                    & scores["dataset"].isin(datasets["dataset"])
                    & scores["metric"].isin(METRICS)]
    scores = scores[rng.random(len(scores)) >= 0.5]
    zoo_dir = folder / "zoo"
    zoo_dir.mkdir()
    for name, frame in (("models", models), ("datasets", datasets), ("records", records),
                        ("scores", scores)):
        frame.to_csv(zoo_dir / f"{name}.csv", index=False)
    # new rows to predict, with blank cells
    new_datasets = _blank(new_datasets, df["numeric"] + df["categorical"], rng)
    new_datasets.iloc[0, new_datasets.columns.get_loc("num_classes")] = ""
    new_datasets.to_csv(folder / "new_datasets.csv", index=False)
    new_models.assign(source_accuracy="").to_csv(folder / "new_models.csv", index=False)
    cfg = dict(base, name="messy", methods=ALL_METHODS, protocols=["cold-dataset"], seeds=[0],
               score_metrics=list(METRICS), output_dir=str(folder / "runs"))
    cfg["data"] = dict(base["data"], root=str(zoo_dir), duplicates="mean")
    cfg["text"] = {"encoder": "hash", "cache_dir": None}
    cfg["gnn"] = {"max_epochs": 8, "patience": 3, "hidden_channels": 8}
    cfg["protocol"] = dict(base["protocol"], num_folds=2)
    (folder / "messy.yaml").write_text(yaml.safe_dump(cfg))
    return {"folder": folder, "config": folder / "messy.yaml", "records": records,
            "scores": scores, "run": folder / "runs" / "messy"}


@pytest.fixture(scope="module")
def messy_run(messy) -> Path:
    assert train_main(["--config", str(messy["config"]), "--quiet", "--no-plots"]) == 0
    return messy["run"]


def test_every_method_trains_on_the_messy_zoo(messy, messy_run):
    payload = json.loads((messy_run / "metrics.json").read_text())
    assert payload["errors"] == {}
    rows = pd.DataFrame(payload["results"])
    expected = {"additive", "zmean", "lr", "mf", "knn", "gnn"} | {f"score:{m}" for m in METRICS}
    assert set(rows["method"]) == expected
    spearman = rows[rows["metric"] == "spearman"].set_index("method")
    assert spearman["mean"].notna().all()
    # every record-based method covers every held-out pair (16 datasets x 8 models, one record
    # per pair after `duplicates: mean`); a raw score only the pairs that have it
    pairs = spearman["pairs"]
    assert (pairs.drop([f"score:{m}" for m in METRICS]) == 16 * 8).all()
    for metric in METRICS:
        scored = messy["scores"][messy["scores"]["metric"] == metric]
        assert pairs[f"score:{metric}"] == len(scored) < 16 * 8
    assert (messy_run / "checkpoint" / "manifest.json").is_file()


def test_predicting_new_rows_with_blanks_completes(messy, messy_run, tmp_path, capsys):
    out = tmp_path / "pred.csv"
    folder = messy["folder"]
    for method in ("gnn", "knn"):
        assert predict_main(["--run", str(messy_run), "--datasets",
                             str(folder / "new_datasets.csv"), "--models",
                             str(folder / "new_models.csv"), "--method", method, "--out",
                             str(out)]) == 0
        predictions = pd.read_csv(out)
        # 3 new datasets x 10 models, 2 new models x 16 old datasets
        assert len(predictions) == 3 * 10 + 2 * 16
        assert np.isfinite(predictions["predicted"]).all()
    captured = capsys.readouterr()
    assert "blank cell(s) imputed" in captured.err
    assert "3 new dataset(s)" in captured.err and "have no scores" in captured.err
    assert captured.out.startswith(f"loaded {messy_run / 'checkpoint'} (written ")


def test_training_again_into_the_run_folder_is_refused_without_overwrite(messy, messy_run,
                                                                        capsys):
    before = sorted(p.name for p in messy_run.iterdir())
    with pytest.raises(SystemExit) as err:
        train_main(["--config", str(messy["config"]), "--quiet", "--fit-only"])
    assert err.value.code == 2
    assert (f"run folder {messy_run} already holds files of an earlier run"
            in capsys.readouterr().err)
    assert sorted(p.name for p in messy_run.iterdir()) == before


def test_overwrite_replaces_the_run_folder_without_stale_files(messy, tmp_path):
    out = tmp_path / "runs"
    args = ["--config", str(messy["config"]), "--quiet", "--no-plots", "--set",
            f"output_dir={out}", "--set", "methods=[additive, zmean]"]
    assert train_main(args) == 0
    (out / "messy" / "stale.txt").write_text("from an earlier run")
    first = json.loads((out / "messy" / "checkpoint" / "manifest.json").read_text())
    # a fit-only run writes no metrics: with --overwrite, none of the first run's remain
    assert train_main(args + ["--fit-only", "--overwrite", "--set", "methods=[zmean]"]) == 0
    assert sorted(p.name for p in (out / "messy").iterdir()) == ["checkpoint", "config.yaml"]
    second = json.loads((out / "messy" / "checkpoint" / "manifest.json").read_text())
    assert list(second["methods"]) == ["zmean"]
    # same data, another config: the data hash stays, the config hash changes
    assert second["data_sha256"] == first["data_sha256"] and len(first["data_sha256"]) == 64
    assert second["config_sha256"] != first["config_sha256"]


def test_overwrite_refuses_a_folder_that_no_run_wrote(messy, tmp_path, capsys):
    folder = tmp_path / "runs" / "messy"
    folder.mkdir(parents=True)
    (folder / "precious.txt").write_text("not a run")
    with pytest.raises(SystemExit):
        train_main(["--config", str(messy["config"]), "--quiet", "--fit-only", "--overwrite",
                    "--set", f"output_dir={tmp_path / 'runs'}"])
    assert "none that a tpred run writes" in capsys.readouterr().err
    assert (folder / "precious.txt").is_file()


# ------------------------------------------------------------------ in memory, on a toy zoo
def test_a_failing_method_is_reported_and_the_others_complete(monkeypatch):
    import tpred.evaluation.run as run_module

    real = run_module.make_predictor

    def make(method, cfg, seed=0):
        if method == "mf":
            raise RuntimeError("mf exploded")
        return real(method, cfg, seed)

    monkeypatch.setattr(run_module, "make_predictor", make)
    cfg = TrainConfig(methods=("additive", "mf", "zmean"), protocols=("cold-dataset",),
                      seeds=(0, 1))
    result = evaluate(toy_zoo(num_models=4, num_datasets=6), cfg, progress=False)
    assert result.errors == {"mf": "cold-dataset seed 0 fold 0: RuntimeError: mf exploded"}
    failed = result.results[result.results["method"] == "mf"]
    assert failed[["metric", "error"]].values.tolist() == [
        ["error", "cold-dataset seed 0 fold 0: RuntimeError: mf exploded"]]
    ok = result.results[result.results["method"] != "mf"]
    assert set(ok["method"]) == {"additive", "zmean"} and (ok["n"] == 2).all()
    assert "FAILED mf: cold-dataset seed 0 fold 0: RuntimeError: mf exploded" \
        in format_table(result.results)


def test_partial_scores_every_method_runs_and_score_ranks_the_pairs_it_has():
    zoo = toy_zoo(num_models=4, num_datasets=6)
    scores = zoo.scores
    # score_a kept for 10 of the 24 pairs, score_b for all
    keep = (scores["metric"] == "score_b") | (np.arange(len(scores)) % 24 < 10)
    from tpred.data.zoo import Zoo

    partial = Zoo.from_frames(zoo.models.reset_index(), zoo.datasets.reset_index(),
                              zoo.records, scores[keep])
    cfg = TrainConfig(methods=("lr", "knn", "score"), protocols=("cold-dataset",), seeds=(0,))
    result = evaluate(partial, cfg, progress=False)
    assert result.errors == {}
    spearman = result.results[result.results["metric"] == "spearman"].set_index("method")
    assert spearman.loc["score:score_a", "pairs"] == 10
    assert spearman.loc["score:score_b", "pairs"] == spearman.loc["lr", "pairs"] == 24
    # the metrics of score:score_a are those of its 10 scored pairs alone
    preds = result.predictions[result.predictions["method"] == "score:score_a"]
    assert preds["predicted"].isna().sum() == 14
    assert "pairs" in format_table(result.results)
