"""`python -m tpred.train` end to end on a tiny synthetic zoo, the config layer, aggregation."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tpred.config import TrainConfig
from tpred.data.zoo import Zoo
from tpred.evaluation.run import aggregate, expand_methods
from tpred.testing import TOY_DATASET_FEATURES, TOY_MODEL_FEATURES, toy_zoo, write_zoo
from tpred.train import cross_validation_note, main, score_gaps

PER_DATASET = {"pearson", "spearman", "kendall", "weighted_tau", "top1_regret"}
GLOBAL = {"rmse", "mae", "global_pearson"}


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory) -> Path:
    """A toy zoo as CSV files and a config that trains every method fast."""
    folder = tmp_path_factory.mktemp("train")
    zoo = toy_zoo(num_models=5, num_datasets=10, seed=4)
    zoo_dir = write_zoo(zoo, folder / "zoo")
    cfg = TrainConfig(name="tiny",
                      methods=("additive", "zmean", "lr", "mf", "knn", "score", "gnn"),
                      protocols=("cold-dataset", "random"), seeds=(0, 1),
                      model_features=TOY_MODEL_FEATURES, dataset_features=TOY_DATASET_FEATURES,
                      output_dir=str(folder / "runs"))
    values = cfg.to_dict()
    values["data"].update(root=str(zoo_dir), scores="scores.csv")
    values["text"].update(encoder="hash", cache_dir=None)
    values["gnn"].update(max_epochs=20, patience=5, hidden_channels=16)
    values["protocol"].update(random_fractions=[0.4], num_folds=3)
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.fixture(scope="module")
def tiny_run(tiny_config) -> Path:
    assert main(["--config", str(tiny_config), "--quiet"]) == 0
    return Path(yaml.safe_load(tiny_config.read_text())["output_dir"]) / "tiny"


def test_metrics_json_has_the_documented_shape(tiny_run):
    payload = json.loads((tiny_run / "metrics.json").read_text())
    assert set(payload) == {"config", "results", "runtime_s", "errors"}
    assert payload["errors"] == {}
    assert TrainConfig.from_dict(payload["config"]).name == "tiny"
    rows = pd.DataFrame(payload["results"])
    assert list(rows.columns) == ["method", "protocol", "metric", "mean", "std", "n", "pairs"]
    # every method of the toy zoo covers every held-out pair (each pair has every score)
    assert rows.groupby("protocol")["pairs"].nunique().eq(1).all()
    assert set(rows["protocol"]) == {"cold-dataset", "random-0.4"}
    methods = {"additive", "zmean", "lr", "mf", "knn", "gnn", "score:score_a", "score:score_b"}
    assert set(rows["method"]) == methods
    assert set(payload["runtime_s"]) == methods
    gnn = rows[(rows["method"] == "gnn") & (rows["protocol"] == "cold-dataset")]
    assert set(gnn["metric"]) == PER_DATASET | GLOBAL
    assert (gnn["n"] == 2).all()
    # a raw score is a ranking: no error on the accuracy scale
    score = rows[rows["method"] == "score:score_a"]
    assert not {"rmse", "mae"} & set(score["metric"])


def test_outputs_are_written_beside_the_metrics(tiny_run):
    predictions = pd.read_csv(tiny_run / "predictions.csv")
    assert list(predictions.columns) == ["method", "protocol", "seed", "fold", "model",
                                         "dataset", "true", "predicted"]
    # cold-dataset: every known pair is predicted once per seed and method
    cold = predictions[(predictions["protocol"] == "cold-dataset")
                       & (predictions["method"] == "additive")]
    assert len(cold) == 2 * 5 * 10
    assert not cold.duplicated(["seed", "model", "dataset"]).any()
    flat = pd.read_csv(tiny_run / "metrics.csv")
    assert len(flat) == len(json.loads((tiny_run / "metrics.json").read_text())["results"])
    assert (tiny_run / "checkpoint" / "manifest.json").stat().st_size > 0
    assert sorted(p.name for p in (tiny_run / "plots").glob("*.png")) == [
        "pred_vs_true_cold-dataset.png", "pred_vs_true_random-0.4.png",
        "spearman_cold-dataset.png", "spearman_random-0.4.png"]
    assert TrainConfig.from_yaml(tiny_run / "config.yaml").name == "tiny"


def test_the_gnn_ranks_cold_datasets_better_than_chance(tiny_run):
    rows = pd.read_csv(tiny_run / "metrics.csv")
    value = rows.query("method == 'gnn' and protocol == 'cold-dataset' and metric == 'spearman'")
    assert value["mean"].item() > 0.3


def test_set_overrides_config_entries(tiny_config, tmp_path):
    out = tmp_path / "other"
    assert main(["--config", str(tiny_config), "--quiet", "--no-checkpoint", "--no-plots",
                 "--set", f"output_dir={out}", "--set", "methods=[additive]",
                 "--set", "protocols=cold-dataset", "--set", "seeds=[3]"]) == 0
    rows = pd.read_csv(out / "tiny" / "metrics.csv")
    assert set(rows["method"]) == {"additive"} and set(rows["protocol"]) == {"cold-dataset"}
    assert (rows["n"] == 1).all()
    assert not (out / "tiny" / "checkpoint").exists()


def test_fit_only_writes_the_checkpoint_without_evaluating(tiny_config, tmp_path):
    import tpred

    out = tmp_path / "fit"
    assert main(["--config", str(tiny_config), "--quiet", "--fit-only", "--set",
                 f"output_dir={out}", "--set", "methods=[zmean, knn]"]) == 0
    assert sorted(p.name for p in (out / "tiny").iterdir()) == ["checkpoint", "config.yaml"]
    run = tpred.load(out / "tiny")
    assert run.methods == ["knn", "zmean"]
    # protocols: [] in the config does the same
    again = tmp_path / "empty"
    assert main(["--config", str(tiny_config), "--quiet", "--set", "protocols=[]", "--set",
                 f"output_dir={again}", "--set", "methods=[zmean]"]) == 0
    assert (again / "tiny" / "checkpoint").is_dir()


def test_fit_only_without_checkpoint_is_an_error(tiny_config, capsys):
    with pytest.raises(SystemExit) as err:
        main(["--config", str(tiny_config), "--fit-only", "--no-checkpoint"])
    assert err.value.code == 2
    assert "leaves nothing to do" in capsys.readouterr().err


def test_evaluate_without_protocols_says_so():
    from tpred.evaluation.run import evaluate

    cfg = TrainConfig(protocols=(), methods=("additive",))
    with pytest.raises(ValueError, match=r"no protocols to evaluate .*--fit-only"):
        evaluate(toy_zoo(num_models=3, num_datasets=4), cfg, progress=False)


def test_unknown_set_key_is_an_error_listing_valid_keys(tiny_config, capsys):
    with pytest.raises(SystemExit) as err:
        main(["--config", str(tiny_config), "--set", "gnn.hidden=3"])
    assert err.value.code == 2
    message = capsys.readouterr().err
    assert "unknown config key 'gnn.hidden'" in message and "gnn.hidden_channels" in message


def test_bad_input_file_is_one_line_with_status_2(tiny_config, tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        main(["--config", str(tiny_config), "--set", f"data.root={tmp_path}"])
    assert err.value.code == 2
    assert "models.csv" in capsys.readouterr().err


def test_unknown_yaml_key_names_the_file_and_valid_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("gnn:\n  layers: 3\n")
    with pytest.raises(ValueError, match=r"c\.yaml: gnn: unknown key\(s\) \['layers'\].*"
                                         r"num_layers"):
        TrainConfig.from_yaml(path)


def test_set_without_equals_sign_is_an_error():
    with pytest.raises(ValueError, match="--set expects key=value"):
        TrainConfig().override("gnn.lr")


def test_invalid_value_is_checked_by_the_dataclass():
    with pytest.raises(ValueError, match=r"protocols\[0\] must be one of"):
        TrainConfig().override("protocols=[nope]")


def test_config_round_trips_through_plain_values():
    cfg = TrainConfig().override("gnn.lr=0.01").override("score_metrics=[logme]")
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.gnn.lr == 0.01 and cfg.score_metrics == ("logme",)


@pytest.mark.parametrize("name", ["default", "domainnet270", "sfda11"])
def test_shipped_configs_parse(name):
    root = Path(__file__).resolve().parent.parent
    cfg = TrainConfig.from_yaml(root / "configs" / f"{name}.yaml")
    assert cfg.methods


def test_aggregate_is_mean_and_sample_std_over_defined_seeds():
    per_seed = pd.DataFrame({"method": "m", "protocol": "p", "metric": ["a"] * 3 + ["b"] * 2,
                             "seed": [0, 1, 2, 0, 1], "value": [0.1, 0.3, np.nan, 0.5, np.nan]})
    out = aggregate(per_seed).set_index("metric")
    assert out.loc["a", "mean"] == pytest.approx(0.2)
    assert out.loc["a", "std"] == pytest.approx(np.sqrt(0.02))  # ddof=1 over the 2 defined
    assert out.loc["a", "n"] == 2
    assert out.loc["b", "mean"] == 0.5 and out.loc["b", "std"] == 0.0 and out.loc["b", "n"] == 1


def test_score_expands_to_one_method_per_metric():
    zoo = toy_zoo(num_models=3, num_datasets=4)
    assert expand_methods(["additive", "score"], zoo) == ["additive", "score:score_a",
                                                           "score:score_b"]
    assert expand_methods(["score"], zoo, ("score_b",)) == ["score:score_b"]
    with pytest.raises(ValueError, match="metric 'logme' is not in the scores table"):
        expand_methods(["score:logme"], zoo)


def test_cross_validation_note_says_when_gnn_fits_cross_validate():
    zoo = toy_zoo(seed=1)                                       # 192 known pairs
    cfg = TrainConfig(methods=("knn", "gnn"))
    assert "at most 500 training pairs (this zoo has 192 known pairs) trains 5 networks" in \
        cross_validation_note(cfg, zoo)
    assert cross_validation_note(replace(cfg, methods=("knn",)), zoo) is None
    off = replace(cfg, gnn=replace(cfg.gnn, cv_max_records=0))
    assert cross_validation_note(off, zoo) is None
    small = replace(cfg, gnn=replace(cfg.gnn, cv_max_records=95))  # 192 > 2 x 95: not noted
    assert cross_validation_note(small, zoo) is None


def test_score_gaps_counts_the_empty_cells_of_the_scores_table():
    zoo = toy_zoo(seed=1)
    assert score_gaps(zoo) is None                              # the toy zoo is fully scored
    metrics = zoo.score_metrics
    pairs = zoo.scores[["model", "dataset"]].drop_duplicates()
    gone = pairs.iloc[:3]                                       # three pairs lose every metric
    keep = ~zoo.scores.set_index(["model", "dataset"]).index.isin(
        pd.MultiIndex.from_frame(gone))
    first = zoo.scores[keep]
    first = first.drop(first.index[0])                          # and one more single cell
    partial = Zoo(zoo.models, zoo.datasets, zoo.records, first.reset_index(drop=True))
    full = zoo.num_models * zoo.num_datasets * len(metrics)
    line = score_gaps(partial)
    assert f"{full - 3 * len(metrics) - 1} of {full}" in line
    assert f"3 of {zoo.num_models * zoo.num_datasets} pairs have none" in line
    no_scores = Zoo(zoo.models, zoo.datasets, zoo.records, zoo.scores.iloc[:0])
    assert score_gaps(no_scores) is None
