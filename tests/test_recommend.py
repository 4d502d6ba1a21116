"""`python -m tpred.recommend`: a zoo built with tpred.extract + tpred.finetune from tiny models,
a --fit-only run, and a budgeted shortlist for a new image folder; the rule by hand."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from scipy.stats import norm

import tpred.extract
from tpred.extract import ExtractSettings, extract
from tpred.extract.demo import write_digit_folder
from tpred.finetune import FinetuneSettings, finetune
from tpred.recommend import boundary_priority, main, next_models, recommend
from tpred.scores.table import score_directory
from tpred.train import main as train_main

SMALL = ExtractSettings(image_size=8)
TASKS = [(0, 1, 2), (3, 4, 5), (6, 7, 8), (1, 4, 7), (2, 5, 9), (0, 5, 8)]
NEW = (0, 3, 9)


@pytest.fixture(scope="module")
def own_run(tmp_path_factory, tiny_net):
    """Four TorchScript TinyNets x six digit folders: extract, finetune, score, --fit-only."""
    root = tmp_path_factory.mktemp("own-zoo")
    specs = []
    for i in range(4):
        torch.manual_seed(i)
        path = root / f"net{i}.pt"
        torch.jit.save(torch.jit.script(tiny_net(num_classes=3 + i).eval()), str(path))
        specs.append(f"torch:{path}")
    names = [f"net{i}" for i in range(4)]
    sources = [write_digit_folder(root / "data" / f"task{j}", classes=c, per_class=6,
                                  test_per_class=3, size=8) for j, c in enumerate(TASKS)]
    zoo = root / "zoo"
    extract(specs, sources, zoo / "features", names=names, settings=SMALL, progress=False)
    finetune(specs, sources, zoo / "records.csv", names=names,
             settings=FinetuneSettings(epochs=2, lr=0.02, batch_size=6, extract=SMALL),
             progress=False)
    score_directory(zoo / "features", zoo / "scores.csv", ["logme", "leep"], progress=False)
    for table in ("models.csv", "datasets.csv"):
        (zoo / table).write_bytes((zoo / "features" / table).read_bytes())
    cfg = {"name": "own", "data": {"root": str(zoo), "scores": "scores.csv"},
           "model_features": {"numeric": ["num_parameters", "num_source_classes"],
                              "text": ["architecture"]},
           # as configs/own-zoo.yaml: `modality` is measured from the new data too
           "dataset_features": {"numeric": ["num_classes", "samples_per_class", "train_size"],
                                "categorical": ["modality"], "text": ["labels"]},
           "text": {"encoder": "hash", "cache_dir": None},
           "methods": ["gnn"], "seeds": [0, 1], "protocols": [],
           "gnn": {"hidden_channels": 8, "heads": 1, "max_epochs": 15, "patience": 5,
                   "num_threads": 1},
           "output_dir": str(root / "runs")}
    (root / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert train_main(["--config", str(root / "cfg.yaml"), "--fit-only"]) == 0
    new = write_digit_folder(root / "data" / "new-digits", classes=NEW, per_class=6,
                             test_per_class=3, size=8)
    return root / "runs" / "own", new, dict(zip(names, specs, strict=True))


def test_a_budget_of_half_the_models_forward_passes_exactly_that_many(own_run, tmp_path,
                                                                      monkeypatch, capsys):
    run, new, specs = own_run
    loaded = []
    real = tpred.extract.load_model

    def counting(spec, **kwargs):
        loaded.append(spec)
        sizes.append(kwargs.get("image_size"))
        return real(spec, **kwargs)

    sizes: list = []
    monkeypatch.setattr(tpred.extract, "load_model", counting)
    out = tmp_path / "out"
    # no --image-size: the size the zoo was extracted with (8) comes from its models.csv
    assert main(["--run", str(run), "--data", str(new), "--budget", "2", "--top-k", "2",
                 "--out", str(out), "--quiet"]) == 0
    assert len(loaded) == 2 and set(loaded) <= set(specs.values())
    assert sizes == [8, 8]
    ranking = pd.read_csv(out / "ranking.csv")
    assert sorted(ranking["model"]) == sorted(specs) and ranking["rank"].tolist() == [1, 2, 3, 4]
    assert ranking["predicted"].is_monotonic_decreasing
    assert (ranking["std"] > 0).all()                            # two seeds: a calibrated std
    assert ranking["scored"].sum() == 2
    assert set(ranking.loc[ranking["scored"], "spec"]) == set(loaded)
    steps = json.loads((out / "steps.json").read_text())
    assert [len(s["scored_now"]) for s in steps["steps"]] == [0, 1, 1]
    assert steps["metadata"] == {"dataset": "new-digits", "modality": "image", "num_classes": 3,
                                 "samples_per_class": 6, "train_size": 18, "test_size": 9,
                                 "labels": "nine, three, zero"}
    scores = pd.read_csv(out / "scores.csv")
    assert set(scores["model"]) == set(ranking.loc[ranking["scored"], "model"])
    assert set(scores["metric"]) == {"logme", "leep"} and (scores["dataset"] == "new-digits").all()
    report = (out / "report.md").read_text()
    assert "2 of 4 models forward-passed" in report and "ranking.png" in report
    # the level line, in the report and steps.json as printed
    assert len(steps["notes"]) == 1 and steps["notes"][0].startswith("1 dataset(s) without")
    assert f"{steps['notes'][0]}." in report
    assert (out / "ranking.png").stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "top-2" in printed
    # the gnn's level_after moved the new dataset (no records, complete metadata), and says so
    assert re.search(r"^1 dataset\(s\) without records moved toward the level of their most "
                     r"similar datasets \(gnn.level_after\): new-digits [+-]\d\.\d{3}$",
                     printed, flags=re.M)
    assert steps["notes"][0] in printed


def test_scores_change_the_predictions(own_run, tmp_path):
    run, new, _ = own_run
    outs = []
    for budget in ("0", "4"):
        out = tmp_path / budget
        assert main(["--run", str(run), "--data", str(new), "--budget", budget,
                     "--image-size", "8", "--out", str(out), "--quiet"]) == 0
        outs.append(pd.read_csv(out / "ranking.csv").set_index("model").sort_index())
    assert not outs[0]["scored"].any() and outs[1]["scored"].all()
    assert not np.allclose(outs[0]["predicted"], outs[1]["predicted"])


def test_a_model_that_cannot_be_loaded_is_an_error_row_and_the_budget_goes_on(
        own_run, tmp_path, capsys):
    """A checkpoint gone missing (or hub weights offline): one warning line and a report
    entry; the forward pass goes to the next model, so the budget is still spent in full."""
    run, new, specs = own_run
    # the model the rule forward-passes first is the one that goes missing, so that it is
    # tried whatever order the run's predictions give
    first_out = tmp_path / "first"
    assert main(["--run", str(run), "--data", str(new), "--budget", "1",
                 "--out", str(first_out), "--quiet"]) == 0
    first = pd.read_csv(first_out / "ranking.csv").query("scored")["model"].tolist()
    assert len(first) == 1
    first = first[0]
    capsys.readouterr()
    path = Path(specs[first].removeprefix("torch:"))
    hidden = path.with_suffix(".away")
    path.rename(hidden)
    try:
        out = tmp_path / "out"
        assert main(["--run", str(run), "--data", str(new), "--budget", "3",
                     "--out", str(out)]) == 0
    finally:
        hidden.rename(path)
    ranking = pd.read_csv(out / "ranking.csv").set_index("model")
    assert ranking["scored"].sum() == 3 and not ranking.at[first, "scored"]
    steps = json.loads((out / "steps.json").read_text())
    assert sum(len(s["scored_now"]) for s in steps["steps"]) == 3
    report = (out / "report.md").read_text()
    assert "could not be loaded or run (1" in report and f"- {first}: " in report
    err = capsys.readouterr().err
    assert f"{first}: not scored (" in err and "Traceback" not in err


def test_load_options_round_trip_through_a_models_row():
    from tpred.extract import LoadOptions

    options = LoadOptions(pretrained=False, layer="blocks.3", image_size=64, seed=7)
    assert LoadOptions.from_row(options.columns()) == options
    # written to CSV and read back as strings / floats
    row = pd.read_csv(pd.io.common.StringIO(pd.DataFrame([options.columns()]).to_csv(
        index=False))).iloc[0].to_dict()
    assert LoadOptions.from_row(row) == options
    # a hand-made table: no load_* cells, `pretrained` False means random weights
    assert LoadOptions.from_row({"pretrained": "False"}) == LoadOptions(pretrained=False)
    assert LoadOptions.from_row({"pretrained": float("nan")}) == LoadOptions()
    with pytest.raises(ValueError, match=r"zoo/models.csv, model 'm': column 'load_image_size' "
                                         r"must be a whole number >= 1, got '6.5'"):
        LoadOptions.from_row({"load_image_size": "6.5"}, where="zoo/models.csv, model 'm'")
    with pytest.raises(ValueError, match="column 'load_pretrained' must be true or false"):
        LoadOptions.from_row({"load_pretrained": "maybe"})


@pytest.mark.parametrize("args, match", [
    (["--budget", "5"], "--budget 5: must be between 0 and the number of models \\(4\\)"),
    (["--top-k", "0"], "--top-k 0: must be between 1"),
    (["--name", "task0"], "'task0' is already in the run's zoo"),
])
def test_bad_input_is_one_line_and_exit_status_2(own_run, tmp_path, capsys, args, match):
    run, new, _ = own_run
    with pytest.raises(SystemExit) as exit_info:
        main(["--run", str(run), "--data", str(new), "--out", str(tmp_path / "o"), *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("python -m tpred.recommend: error: ")
    assert pytest.importorskip("re").search(match, err)


def test_boundary_priority_by_hand():
    mu = np.array([0.9, 0.8, 0.7, 0.5])
    sd = np.array([0.05, 0.1, 0.1, np.nan])
    # K=1: tau = 0.85; z = 0.05/0.05 = 1, 0.05/0.1 = 0.5, 0.15/0.1 = 1.5; NaN std -> 0
    np.testing.assert_allclose(boundary_priority(mu, sd, 1),
                               [norm.sf(1.0), norm.sf(0.5), norm.sf(1.5), 0.0])
    # K=2: tau = 0.75
    np.testing.assert_allclose(boundary_priority(mu, sd, 2),
                               [norm.sf(3.0), norm.sf(0.5), norm.sf(0.5), 0.0])
    assert boundary_priority(mu, sd, 4).tolist() == [1.0] * 4
    # a uniform calibration factor keeps the order
    assert np.argsort(boundary_priority(mu, 3 * sd, 1)).tolist() == \
        np.argsort(boundary_priority(mu, sd, 1)).tolist()


def test_next_models_rules():
    ranking = pd.DataFrame({"model": list("abcd"), "predicted": [0.9, 0.8, 0.7, 0.5],
                            "std": [0.05, 0.1, 0.1, 0.3]})
    # K=2, tau 0.75: priorities b, c (z 0.5) > d (z 0.83) > a (z 3); b wins the tie (mu + sigma)
    assert next_models(ranking, [], 4, k=2) == ["b", "c", "d", "a"]
    assert next_models(ranking, ["b"], 2, k=2) == ["c", "d"]
    assert next_models(ranking, [], 2, k=2, rule="metadata", order=list("dcba")) == ["d", "c"]
    got = next_models(ranking, ["a"], 3, k=2, rule="random", rng=np.random.default_rng(0))
    assert sorted(got) == ["b", "c", "d"]


def test_recommend_loop_scores_each_model_once_and_repredicts_after_each_batch():
    models = [f"m{i}" for i in range(5)]
    calls, seen = [], []

    def predict(scores):
        seen.append(None if scores is None else sorted(scores["model"]))
        return pd.DataFrame({"model": models, "predicted": np.linspace(0.9, 0.5, 5),
                             "std": np.full(5, 0.1)})

    def scorer(batch):
        calls.append(list(batch))
        return pd.DataFrame({"model": batch, "dataset": "d", "metric": "logme",
                             "value": 1.0})

    rec = recommend(predict, scorer, dataset="d", models=models, budget=3, top_k=1,
                    batch_size=2)
    assert [len(c) for c in calls] == [2, 1] and len(set(sum(calls, []))) == 3
    assert seen == [None, sorted(calls[0]), sorted(calls[0] + calls[1])]
    assert rec.ranking["scored"].sum() == 3 and rec.scored == sum(calls, [])
    with pytest.raises(ValueError, match="--batch-size 0"):
        recommend(predict, scorer, dataset="d", models=models, budget=1, batch_size=0)
