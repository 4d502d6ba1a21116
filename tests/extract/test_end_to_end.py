"""Your own zoo, end to end and offline: image folders and a text table, one model of each
family (hf: tiny ViT and tiny BERT, timm:, torchvision:, torch:) and a broken one, through
`tpred.extract`, `tpred.score`, `tpred.finetune --protocol linear-probe`, `tpred.train` and
`tpred.predict --top-k` — the README's "Your own zoo" steps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tpred.extract import load_model, read_pair
from tpred.extract.__main__ import main as extract_main
from tpred.extract.demo import write_digit_folder, write_topic_table
from tpred.finetune.__main__ import main as finetune_main
from tpred.predict import main as predict_main
from tpred.score import main as score_main
from tpred.train import REPO_ROOT
from tpred.train import main as train_main

HISTORY = {"digits-a": (0, 1, 2), "digits-b": (3, 4, 5), "digits-c": (6, 7, 8)}
IMAGE_MODELS = ("vit", "timm-resnet18", "tv-resnet18", "tinynet")
COMMON = ["--no-pretrained", "--image-size", "16", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def own_zoo(tmp_path_factory, tiny_vit, tiny_bert, script_file):
    """Every step of the README run once; returns the folder."""
    root = tmp_path_factory.mktemp("own-zoo")
    data = [write_digit_folder(root / "data" / name, classes=classes, size=16)
            for name, classes in HISTORY.items()]
    data.append(write_topic_table(root / "data" / "topics.csv"))
    write_digit_folder(root / "data" / "digits-new", classes=(1, 7, 9), size=16)
    (root / "broken.pt").write_bytes(b"not a model")
    (root / "models.txt").write_text(
        f"hf:{tiny_vit} vit\nhf:{tiny_bert} bert\ntimm:resnet18 timm-resnet18\n"
        f"torchvision:resnet18 tv-resnet18\ntorch:{script_file} tinynet\n"
        f"torch:{root / 'broken.pt'} broken\n")
    extract = ["--models-file", str(root / "models.txt"), *COMMON]
    zoo, new = root / "zoo", root / "new"

    # 1-3: features, scores, records of the history datasets
    assert extract_main([*extract, *[a for d in data for a in ("--data", str(d))],
                         "--out", str(zoo)]) == 1                    # the broken model fails
    metrics = ["--metrics", "logme,leep,hscore", "--no-progress"]
    assert score_main(["--features", str(zoo), "--out", str(zoo / "scores.csv"), *metrics]) == 0
    assert finetune_main(["--features", str(zoo), "--out", str(zoo / "records.csv"),
                          "--no-progress"]) == 0
    # 4: train on the zoo
    assert train_main(["--config", str(REPO_ROOT / "configs" / "own-zoo.yaml"),
                       "--set", f"data.root={zoo}", "--set", f"output_dir={root / 'runs'}",
                       "--set", "text.encoder=hash", "--set", "text.cache_dir=null",
                       "--set", "methods=[additive,knn,gnn]", "--set", "seeds=[0]",
                       "--set", "gnn.max_epochs=20", "--no-plots", "--quiet"]) == 0
    # 5: a new dataset: its features and scores, then the top-3 models
    assert extract_main([*extract, "--data", str(root / "data" / "digits-new"),
                         "--out", str(new)]) == 1
    assert score_main(["--features", str(new), "--out", str(new / "scores.csv"), *metrics]) == 0
    assert predict_main(["--run", str(root / "runs" / "own-zoo"), "--datasets",
                         str(new / "datasets.csv"), "--scores", str(new / "scores.csv"),
                         "--top-k", "3", "--out", str(root / "predictions.csv"),
                         "--quiet"]) == 0
    return root


def test_feature_files_have_the_measured_shapes(own_zoo):
    zoo = own_zoo / "zoo"
    models = pd.read_csv(zoo / "models.csv", keep_default_na=False).set_index("model")
    assert sorted(models.index) == sorted([*IMAGE_MODELS, "bert"])
    pairs = sorted(p.relative_to(zoo).as_posix() for p in zoo.glob("*/*.npz"))
    assert pairs == sorted([f"{m}/{d}.npz" for m in IMAGE_MODELS for d in HISTORY]
                           + ["bert/topics.npz"])
    for pair in pairs:
        model, dataset = pair.split("/")
        arrays = read_pair(zoo / pair)
        dim, num_source = models.loc[model, ["feature_dim", "num_source_classes"]]
        assert arrays["features"].shape == (18, dim) and arrays["labels"].shape == (18,)
        assert arrays["test_features"].shape == (9, dim)
        assert arrays["probs"].shape == (18, num_source)
        np.testing.assert_allclose(arrays["probs"].sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(arrays["test_probs"].sum(axis=1), 1.0, atol=1e-5)
        assert np.isfinite(arrays["features"]).all()
        sidecar = json.loads((zoo / pair).with_suffix(".json").read_text())
        assert sidecar["feature_dim"] == dim and sidecar["splits"]["train"]["size"] == 18
    assert models.loc["vit", "feature_dim"] == 32 and models.loc["tinynet", "feature_dim"] == 16
    assert models.loc["timm-resnet18", "feature_dim"] == 512
    assert models.loc["vit", "architecture_family"] == "vit"
    assert models.loc["bert", "modality"] == "text"
    # what re-creates each network (tpred.recommend, tpred.tune): COMMON's options
    from tpred.extract import LoadOptions
    for model in models.index:
        assert LoadOptions.from_row(models.loc[model].to_dict()) == LoadOptions(
            pretrained=False, image_size=16, seed=0)


def test_num_parameters_are_counted_from_the_networks(own_zoo, tiny_vit, tiny_bert,
                                                      script_file):
    models = pd.read_csv(own_zoo / "zoo" / "models.csv").set_index("model")
    specs = {"vit": f"hf:{tiny_vit}", "bert": f"hf:{tiny_bert}", "timm-resnet18":
             "timm:resnet18", "tv-resnet18": "torchvision:resnet18",
             "tinynet": f"torch:{script_file}"}
    for name, spec in specs.items():
        module = load_model(spec, pretrained=False).module
        assert models.loc[name, "num_parameters"] == sum(p.numel() for p in module.parameters())


def test_datasets_table_and_errors_rows(own_zoo):
    zoo = own_zoo / "zoo"
    datasets = pd.read_csv(zoo / "datasets.csv").set_index("dataset")
    assert sorted(datasets.index) == [*HISTORY, "topics"]
    assert datasets.loc["digits-b", "labels"] == "five, four, three"
    assert (datasets[["num_classes", "samples_per_class", "train_size", "test_size"]]
            .loc["digits-a"].tolist() == [3, 6, 18, 9])
    errors = pd.read_csv(zoo / "errors.csv", keep_default_na=False)
    assert sorted(errors["dataset"]) == sorted([*HISTORY, "topics"])
    assert (errors["model"] == "broken").all() and (errors["item"] == "").all()
    assert errors["reason"].str.contains("not a TorchScript or torch.save archive").all()


def test_a_rerun_skips_every_finished_pair(own_zoo, capsys):
    data = sorted((own_zoo / "data").glob("digits-[abc]")) + [own_zoo / "data" / "topics.csv"]
    stamps = {p: p.stat().st_mtime_ns for p in (own_zoo / "zoo").glob("*/*.npz")}
    assert extract_main(["--models-file", str(own_zoo / "models.txt"), *COMMON,
                         *[a for d in data for a in ("--data", str(d))],
                         "--out", str(own_zoo / "zoo")]) == 1
    assert "13 already done" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in (own_zoo / "zoo").glob("*/*.npz")} == stamps


def test_scores_and_records_cover_every_pair(own_zoo):
    zoo = own_zoo / "zoo"
    scores = pd.read_csv(zoo / "scores.csv")
    records = pd.read_csv(zoo / "records.csv")
    assert len(records) == 13 and (records["protocol"] == "linear-probe").all()
    assert records["accuracy"].between(0, 1).all()
    assert set(zip(scores["model"], scores["dataset"], strict=True)) == set(
        zip(records["model"], records["dataset"], strict=True))
    assert set(scores["metric"]) == {"logme", "leep", "hscore"}


def test_training_and_the_top_k_ranking_of_a_new_dataset(own_zoo):
    run = own_zoo / "runs" / "own-zoo"
    results = pd.DataFrame(json.loads((run / "metrics.json").read_text())["results"])
    assert {"additive", "knn", "gnn"} <= set(results["method"])
    predictions = pd.read_csv(own_zoo / "predictions.csv")
    assert set(predictions["dataset"]) == {"digits-new"}
    assert set(predictions["model"]) == {*IMAGE_MODELS, "bert"}
    assert np.isfinite(predictions["predicted"]).all()
    ranking = pd.read_csv(own_zoo / "predictions.ranking.csv")
    assert ranking["rank"].tolist() == [1, 2, 3] and set(ranking["dataset"]) == {"digits-new"}
    assert ranking["predicted"].is_monotonic_decreasing
    new_scores = pd.read_csv(own_zoo / "new" / "scores.csv")
    assert set(new_scores["model"]) == set(IMAGE_MODELS)


def test_the_config_names_columns_extract_writes(own_zoo):
    import yaml

    config = yaml.safe_load(Path(REPO_ROOT / "configs" / "own-zoo.yaml").read_text())
    models = pd.read_csv(own_zoo / "zoo" / "models.csv")
    datasets = pd.read_csv(own_zoo / "zoo" / "datasets.csv")
    for table, key in ((models, "model_features"), (datasets, "dataset_features")):
        named = {c for cols in config[key].values() for c in cols}
        assert named <= set(table.columns), named - set(table.columns)
