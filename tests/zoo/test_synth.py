"""`python -m tpred.zoo synth`: synthetic zoos from a planted model, and that the plant is
recoverable by tpred's own training program."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from tpred.config import TrainConfig
from tpred.data import load_zoo
from tpred.train import main as train_main
from tpred.zoo.__main__ import main as zoo_main
from tpred.zoo.synth import (
    MIN_RECORDS_PER_DATASET,
    SCORE_METRICS,
    SynthSpec,
    synth_zoo,
    write_synth_zoo,
)


@pytest.mark.parametrize("seed", [0, 1])
def test_records_are_distinct_pairs_covering_every_node(seed):
    zoo = synth_zoo(SynthSpec(40, 300, 0.02, seed=seed))
    records = zoo.records
    assert not records.duplicated(["model", "dataset"]).any()
    per_dataset = records.groupby("dataset").size()
    assert len(per_dataset) == 300 and per_dataset.min() >= MIN_RECORDS_PER_DATASET
    assert records["model"].nunique() == 40
    # the uniform sample gives 240 pairs; topping up adds what the sparse datasets lack
    assert 240 <= len(records) <= 240 + MIN_RECORDS_PER_DATASET * 300
    assert records["accuracy"].between(0, 1).all()
    chance = 1 / zoo.datasets.set_index("dataset")["num_classes"][records["dataset"]].to_numpy()
    assert (records["accuracy"].to_numpy() >= chance - 5e-5).all()  # rounded to 4 decimals
    assert set(zoo.scores["metric"]) == set(SCORE_METRICS)
    assert len(zoo.scores) == len(SCORE_METRICS) * len(records)


def test_same_seed_same_zoo_other_seed_other_zoo():
    first, again = synth_zoo(SynthSpec(10, 20, 0.5, seed=3)), synth_zoo(SynthSpec(10, 20, 0.5,
                                                                                  seed=3))
    pd.testing.assert_frame_equal(first.records, again.records)
    pd.testing.assert_frame_equal(first.scores, again.scores)
    other = synth_zoo(SynthSpec(10, 20, 0.5, seed=4))
    assert not first.records["accuracy"].equals(other.records["accuracy"])


def test_full_density_is_the_whole_grid():
    zoo = synth_zoo(SynthSpec(7, 9, 1.0))
    assert len(zoo.records) == 63
    assert set(zoo.shares) == {"model", "dataset", "interaction", "noise"}
    assert sum(zoo.shares.values()) == pytest.approx(1, abs=1e-3)


def test_proxy_scores_correlate_with_the_truth_at_the_chosen_level():
    zoo = synth_zoo(SynthSpec(60, 80, 1.0, score_corr=0.6, seed=5))
    joined = zoo.scores.merge(zoo.truth, on=["model", "dataset"])
    corr = {metric: np.mean([np.corrcoef(g["value"], g["logit"])[0, 1]
                             for _, g in frame.groupby("dataset")])
            for metric, frame in joined.groupby("metric")}
    assert corr["proxy_strong"] == pytest.approx(0.6, abs=0.1)
    assert corr["proxy_weak"] == pytest.approx(0.3, abs=0.1)
    exact = synth_zoo(SynthSpec(60, 80, 1.0, score_corr=1.0, seed=5))
    strong = exact.scores[exact.scores["metric"] == "proxy_strong"].merge(exact.truth)
    for _, g in strong.groupby("dataset"):  # corr 1: a per-dataset affine map of the truth
        assert np.corrcoef(g["value"], g["logit"])[0, 1] == pytest.approx(1, abs=1e-9)


def test_written_zoo_loads_with_its_config(tmp_path):
    spec = SynthSpec(12, 30, 0.4, seed=2, text=False)
    zoo = write_synth_zoo(spec, tmp_path / "z")
    cfg = TrainConfig.from_yaml(tmp_path / "z" / "config.yaml")
    assert cfg.dataset_features.text == () and cfg.data.root == str((tmp_path / "z").resolve())
    loaded = load_zoo(cfg.data, model_features=cfg.model_features,
                      dataset_features=cfg.dataset_features)
    assert len(loaded.records) == len(zoo.records)
    np.testing.assert_allclose(loaded.accuracy(zoo.records[["model", "dataset"]]),
                               zoo.records["accuracy"])
    assert sorted(loaded.score_metrics) == sorted(SCORE_METRICS)
    info = json.loads((tmp_path / "z" / "synth.json").read_text())
    assert info["spec"]["num_models"] == 12 and info["num_records"] == len(zoo.records)
    assert yaml.safe_load((tmp_path / "z" / "config.yaml").read_text())["dataset_features"][
        "categorical"] == ["domain"]
    with_text = write_synth_zoo(SynthSpec(12, 30, 0.4), tmp_path / "t")
    assert TrainConfig.from_yaml(tmp_path / "t" / "config.yaml").dataset_features.text == (
        "labels",)
    assert with_text.datasets["labels"].str.len().gt(0).all()


@pytest.mark.slow
def test_planted_interaction_is_recovered_gnn_beats_additive(tmp_path, capsys):
    out = tmp_path / "zoo"
    assert zoo_main(["synth", "--models", "20", "--datasets", "40", "--density", "0.6",
                     "--out", str(out), "--seed", "0", "--no-text"]) == 0
    assert "20 models, 40 datasets" in capsys.readouterr().out
    assert train_main(["--config", str(out / "config.yaml"), "--quiet", "--no-checkpoint",
                       "--no-plots", "--set", f"output_dir={tmp_path / 'runs'}",
                       "--set", "methods=[additive,gnn]", "--set", "protocols=[cold-dataset]",
                       "--set", "seeds=[0]", "--set", "protocol.num_folds=2",
                       "--set", "gnn.max_epochs=150"]) == 0
    metrics = pd.read_csv(tmp_path / "runs" / "zoo" / "metrics.csv")
    spearman = metrics[metrics["metric"] == "spearman"].set_index("method")["mean"]
    # additive cannot see the domain interaction (~40 % of the variance); the gnn can
    assert spearman["gnn"] > spearman["additive"] + 0.1, spearman.to_dict()


@pytest.mark.parametrize(("argv", "message"), [
    (["--models", "1", "--datasets", "5", "--density", "0.5"],
     "SynthSpec.num_models must be an int >= 2, got 1"),
    (["--models", "5", "--datasets", "0", "--density", "0.5"],
     "SynthSpec.num_datasets must be an int >= 2, got 0"),
    (["--models", "5", "--datasets", "5", "--density", "0"],
     r"SynthSpec.density must be in \(0, 1\], got 0.0"),
    (["--models", "5", "--datasets", "5", "--density", "0.5", "--noise", "-1"],
     "SynthSpec.noise must be >= 0, got -1.0"),
    (["--models", "5", "--datasets", "5", "--density", "0.5", "--score-corr", "1.5"],
     r"SynthSpec.score_corr must be in \[0, 1\], got 1.5"),
])
def test_cli_exits_2_on_bad_options(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        zoo_main(["synth", *argv, "--out", str(tmp_path / "z")])
    assert exc.value.code == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "z").exists()
