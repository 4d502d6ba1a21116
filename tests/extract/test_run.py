"""Running models over sources: arrays, feature files, sidecars, measured tables, resume, atomic
writes, errors rows, and the command line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from tpred.extract import (
    ExtractSettings,
    extract,
    extract_split,
    extract_tensors,
    load_model,
    open_source,
    read_pair,
)
from tpred.extract.__main__ import main
from tpred.extract.options import read_models_file
from tpred.extract.run import merge_rows

SMALL = ExtractSettings(image_size=8)


def test_extract_split_gives_features_probs_labels_and_flops(script_file, digit_folder):
    model = load_model(f"torch:{script_file}", image_size=8)
    split = open_source(digit_folder).train
    got = extract_split(model, split, batch_size=5)
    assert got.features.shape == (18, 16) and got.features.dtype == np.float32
    assert got.probs.shape == (18, 4) and got.probs.dtype == np.float32
    np.testing.assert_allclose(got.probs.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(got.labels, split.labels)
    np.testing.assert_array_equal(got.kept, np.arange(18))
    # conv 1->4, 3x3 on 8x8: 2*4*9*64 = 4608; fc 16->4: 2*16*4 = 128 (multiply-add = 2 FLOPs)
    assert got.flops == 4608 + 128 and got.input_shape == "1x1x8x8" and got.failures == []
    # batching does not change the numbers
    one_batch = extract_split(model, split, batch_size=64)
    np.testing.assert_allclose(one_batch.features, got.features, rtol=1e-5, atol=1e-6)
    feats, probs = extract_tensors(model, model.collate([model.transform(split.item(i))
                                                        for i in range(18)]), batch_size=7)
    np.testing.assert_allclose(feats, got.features, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probs, got.probs, rtol=1e-5, atol=1e-6)


def test_a_corrupt_image_is_left_out_with_a_reason(script_file, digit_folder, tmp_path):
    root = shutil.copytree(digit_folder, tmp_path / "broken")
    bad = root / "train" / "one" / "corrupt.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    model = load_model(f"torch:{script_file}", image_size=8)
    split = open_source(root).train
    got = extract_split(model, split)
    assert len(got.labels) == 18 and len(split) == 19
    assert got.failures[0][0] == str(bad) and "unreadable image" in got.failures[0][1]
    assert str(bad) not in [split.describe(i) for i in got.kept]

    summary = extract([f"torch:{script_file}"], [root], tmp_path / "out", settings=SMALL,
                      progress=False)
    assert summary.num_done == 1 and summary.num_item_errors == 1
    errors = pd.read_csv(tmp_path / "out" / "errors.csv", keep_default_na=False)
    assert errors[["model", "dataset", "item"]].values.tolist() == [
        ["tinynet", "broken", str(bad)]]
    sidecar = json.loads((tmp_path / "out" / "tinynet" / "broken.json").read_text())
    assert sidecar["left_out"] == [str(bad)] and sidecar["splits"]["train"] == {
        "size": 18, "left_out": 1}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, script_file, digit_folder, text_csv, tiny_bert):
    out = tmp_path_factory.mktemp("run") / "features"
    summary = extract(["timm:resnet18", f"torch:{script_file}", f"hf:{tiny_bert}"],
                      [digit_folder, text_csv], out, names=["resnet", "tinynet", "bert"],
                      settings=ExtractSettings(pretrained=False, image_size=8),
                      progress=False)
    return out, summary


def test_every_pair_is_written_in_the_layout_tpred_score_reads(run_dir):
    out, summary = run_dir
    assert (summary.num_pairs, summary.num_done, summary.num_other_modality,
            summary.num_failed) == (6, 3, 3, 0)
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("*/*.npz")) == [
        "bert/topics.npz", "resnet/digits3.npz", "tinynet/digits3.npz"]
    arrays = read_pair(out / "resnet" / "digits3.npz")
    assert sorted(arrays) == ["classes", "features", "labels", "probs", "test_features",
                              "test_labels", "test_probs"]
    assert arrays["features"].shape == (18, 512) and arrays["test_features"].shape == (9, 512)
    assert arrays["probs"].shape == (18, 1000) and arrays["test_probs"].shape == (9, 1000)
    np.testing.assert_allclose(arrays["probs"].sum(1), 1.0, atol=1e-5)
    assert arrays["classes"].tolist() == ["one", "two", "zero"]
    assert np.bincount(arrays["labels"]).tolist() == [6, 6, 6]
    sidecar = json.loads((out / "resnet" / "digits3.json").read_text())
    assert sidecar["layer"] == "input of fc" and sidecar["feature_dim"] == 512
    assert sidecar["splits"] == {"train": {"size": 18, "left_out": 0},
                                 "test": {"size": 9, "left_out": 0}}
    assert "(8, 8)" in sidecar["preprocessing"] and sidecar["seconds"] > 0
    text = read_pair(out / "bert" / "topics.npz")
    assert text["features"].shape == (18, 32) and text["probs"].shape == (18, 3)


def test_models_and_datasets_tables_are_measured(run_dir):
    out, _ = run_dir
    models = pd.read_csv(out / "models.csv", keep_default_na=False).set_index("model")
    assert list(models.index) == ["resnet", "tinynet", "bert"]
    resnet = load_model("timm:resnet18", pretrained=False)
    assert models.loc["resnet", "num_parameters"] == sum(
        p.numel() for p in resnet.module.parameters())
    assert models.loc["tinynet", "num_parameters"] == 108  # conv 4*9+4, fc 16*4+4
    assert models.loc["tinynet", "flops"] == 4736 and models.loc["tinynet", "feature_dim"] == 16
    assert models.loc["resnet", "num_source_classes"] == 1000
    assert models.loc["resnet", "architecture_family"] == "resnet"
    assert models.loc["bert", "library"] == "transformers"
    assert models.loc["resnet", "pretrained"] == "False"
    assert models.loc["resnet", "pretrain_dataset"] == ""  # random weights: never invented
    assert models.loc["bert", "flops_input"].endswith("tokens")
    datasets = pd.read_csv(out / "datasets.csv", keep_default_na=False).set_index("dataset")
    assert datasets.loc["digits3", "labels"] == "one, two, zero"
    assert datasets.loc["topics", "train_size"] == 18
    assert datasets.loc["topics", "samples_per_class"] == 6


def test_a_rerun_skips_finished_pairs_and_merges_new_models(run_dir, script_file, digit_folder,
                                                            text_csv, tmp_path):
    out = shutil.copytree(run_dir[0], tmp_path / "features")
    stamp = (out / "tinynet" / "digits3.npz").stat().st_mtime_ns
    models_before = pd.read_csv(out / "models.csv", keep_default_na=False)
    again = extract([f"torch:{script_file}"], [digit_folder, text_csv], out, settings=SMALL,
                    progress=False)
    assert (again.num_skipped, again.num_done) == (1, 0)
    assert (out / "tinynet" / "digits3.npz").stat().st_mtime_ns == stamp
    more = extract([f"torch:{script_file}"], [digit_folder], out, names=["tinynet-2"],
                   settings=SMALL, progress=False)
    assert more.num_done == 1
    models = pd.read_csv(out / "models.csv", keep_default_na=False)
    assert models["model"].tolist() == ["resnet", "tinynet", "bert", "tinynet-2"]
    pd.testing.assert_frame_equal(models.iloc[:3], models_before)
    datasets = pd.read_csv(out / "datasets.csv")
    assert datasets["dataset"].tolist() == ["digits3", "topics"]  # merged, not duplicated
    redo = extract([f"torch:{script_file}"], [digit_folder], out, settings=SMALL,
                   overwrite=True, progress=False)
    assert redo.num_done == 1 and (out / "tinynet" / "digits3.npz").stat().st_mtime_ns != stamp


def test_a_broken_model_is_an_errors_row_and_a_retry_clears_it(script_file, digit_folder,
                                                               tmp_path):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"garbage" * 10)
    out = tmp_path / "out"
    summary = extract([f"torch:{broken}", f"torch:{script_file}"], [digit_folder], out,
                      settings=SMALL, progress=False)
    assert (summary.num_done, summary.num_failed) == (1, 1)
    errors = pd.read_csv(out / "errors.csv", keep_default_na=False)
    assert errors[["model", "dataset", "item"]].values.tolist() == [["broken", "digits3", ""]]
    assert errors["reason"][0].startswith("ValueError: torch:") and "not a TorchScript" in \
        errors["reason"][0]
    assert not (out / "broken").exists()
    shutil.copy(script_file, broken)  # fixed: the rerun extracts it and drops the old row
    again = extract([f"torch:{broken}"], [digit_folder], out, settings=SMALL, progress=False)
    assert again.num_done == 1
    assert len(pd.read_csv(out / "errors.csv")) == 0


def test_an_interrupted_write_leaves_no_half_file(script_file, digit_folder, tmp_path,
                                                  monkeypatch):
    def killed(fh, **arrays):
        fh.write(b"PK\x03\x04 half an archive")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", killed)
    with pytest.raises(KeyboardInterrupt):
        extract([f"torch:{script_file}"], [digit_folder], tmp_path / "out", settings=SMALL,
                progress=False)
    assert list((tmp_path / "out").rglob("*.npz")) == []
    assert [p.name for p in (tmp_path / "out" / "tinynet").iterdir()] == ["digits3.json"]
    monkeypatch.undo()
    summary = extract([f"torch:{script_file}"], [digit_folder], tmp_path / "out",
                      settings=SMALL, progress=False)
    assert summary.num_done == 1  # not mistaken for a finished pair


def test_names_must_be_distinct_and_one_per_spec(script_file, digit_folder, tmp_path):
    with pytest.raises(ValueError, match="would both be named 'resnet18'; give distinct names"):
        extract(["timm:resnet18", "torchvision:resnet18"], [digit_folder], tmp_path)
    with pytest.raises(ValueError, match=r"give one name per model \(1\), got 2"):
        extract([f"torch:{script_file}"], [digit_folder], tmp_path, names=["a", "b"])
    with pytest.raises(ValueError, match="two data sources would both be named 'digits3'"):
        extract([f"torch:{script_file}"], [digit_folder, digit_folder], tmp_path)
    with pytest.raises(ValueError, match="Could not resolve prefix 'keras'"):
        extract(["keras:x"], [digit_folder], tmp_path)
    with pytest.raises(ValueError, match="jobs must be a positive int or -1"):
        extract([f"torch:{script_file}"], [digit_folder], tmp_path, jobs=0)


def test_merge_rows_replaces_by_key_and_adds_columns(tmp_path):
    path = tmp_path / "t.csv"
    merge_rows(path, [{"model": "a", "x": 1}, {"model": "b", "x": 2}], "model")
    table = merge_rows(path, [{"model": "b", "x": 3, "y": "new"}, {"model": "c", "x": 4},
                              {"model": "a", "x": 5}], "model")
    assert table.values.tolist() == [["a", "5", ""], ["b", "3", "new"], ["c", "4", ""]]
    assert pd.read_csv(path, keep_default_na=False).columns.tolist() == ["model", "x", "y"]
    pd.DataFrame({"id": ["a"]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"missing key column\(s\) \['model'\]"):
        merge_rows(path, [{"model": "c"}], "model")


def test_cli_runs_resumes_and_reports_failures(script_file, digit_folder, tmp_path, capsys):
    models = tmp_path / "models.txt"
    models.write_text(f"# my zoo\ntorch:{script_file} tiny\ntorch:{tmp_path / 'x.pt'} gone\n")
    args = ["--models-file", str(models), "--data", str(digit_folder), "--out",
            str(tmp_path / "out"), "--image-size", "8", "--device", "cpu", "--no-progress"]
    assert main(args) == 1  # one pair failed: exit status 1, the other is written
    assert "1 extracted" in capsys.readouterr().err
    assert (tmp_path / "out" / "tiny" / "digits3.npz").exists()
    assert main(args) == 1
    assert "1 already done" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--models", "keras:x", "--data", str(digit_folder), "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "Could not resolve prefix 'keras'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--models", f"torch:{script_file}", "--data", str(digit_folder), "--out",
              str(tmp_path), "--batch-size", "0"])
    assert "--batch-size must be >= 1" in capsys.readouterr().err


def test_models_file_errors(tmp_path):
    path = tmp_path / "m.txt"
    path.write_text("timm:a one\ntimm:b\n")
    with pytest.raises(ValueError, match="give a NAME on every line or on none"):
        read_models_file(path)
    path.write_text("timm:a one two\n")
    with pytest.raises(ValueError, match=r"m.txt, line 1: expected 'SPEC \[NAME\]'"):
        read_models_file(path)
    path.write_text("# nothing\n")
    with pytest.raises(ValueError, match="no model spec"):
        read_models_file(path)
    with pytest.raises(ValueError, match="no such models file"):
        read_models_file(tmp_path / "absent.txt")
    path.write_text("timm:a\n\ntimm:b  # comment\n")
    assert read_models_file(path) == (["timm:a", "timm:b"], None)


@pytest.mark.slow
def test_parallel_jobs_give_the_same_files(script_file, digit_folder, tmp_path):
    sources = [digit_folder, shutil.copytree(digit_folder, tmp_path / "again")]
    extract([f"torch:{script_file}"], sources, tmp_path / "serial", settings=SMALL,
            progress=False)
    summary = extract([f"torch:{script_file}"], sources, tmp_path / "parallel", settings=SMALL,
                      jobs=2, progress=False)
    assert summary.num_done == 2
    for dataset in ("digits3", "again"):
        a = read_pair(tmp_path / "serial" / "tinynet" / f"{dataset}.npz")
        b = read_pair(tmp_path / "parallel" / "tinynet" / f"{dataset}.npz")
        assert sorted(a) == sorted(b)
        for key in a:  # other thread counts may change the last float bits
            if a[key].dtype.kind == "f":
                np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-7)
            else:
                np.testing.assert_array_equal(a[key], b[key])
