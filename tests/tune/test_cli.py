"""`python -m tpred.tune` end to end on a `--small` digits zoo: ranking, choices, outputs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

import tpred
from tpred.checkpoint import fit_all, save_checkpoint
from tpred.config import GNNConfig, TextConfig, ZooConfig
from tpred.data import load_zoo
from tpred.data.zoo import Zoo
from tpred.train import load_config
from tpred.tune.__main__ import main
from tpred.zoo.hub import weights_path

HELD_OUT = "original_2a_5"       # not in the run: a new dataset
KNOWN = "inverted_4c_10"         # in the run, with every record
PROG_ERROR = "python -m tpred.tune: error: "
FAST = ["--steps", "12", "--eval-every", "6", "--quiet"]


def _fit_run(zoo_root, out, held_out=()):
    """A gnn run (one seed, small and fast) on the zoo at `zoo_root` without `held_out`."""
    cfg = load_config(None)  # configs/default.yaml: the digits zoo's feature columns
    cfg = replace(cfg, data=ZooConfig(root=str(zoo_root), scores="scores.csv"),
                  text=TextConfig(encoder="hash", cache_dir=None), methods=("gnn",), seeds=(0,),
                  gnn=GNNConfig(hidden_channels=16, heads=2, max_epochs=30, patience=8,
                                num_threads=1))
    zoo = load_zoo(cfg.data, model_features=cfg.model_features,
                   dataset_features=cfg.dataset_features)
    keep = lambda f: f[~f["dataset"].isin(list(held_out))]  # noqa: E731
    zoo = Zoo.from_frames(zoo.models, keep(zoo.datasets.reset_index()), keep(zoo.records),
                          keep(zoo.scores))
    out.mkdir(parents=True)
    save_checkpoint(out / "checkpoint", cfg, zoo, fit_all(zoo, cfg, ["gnn"], progress=False))
    return out


@pytest.fixture(scope="module")
def zoo_and_run(small_digits_zoo, tmp_path_factory):
    run = _fit_run(small_digits_zoo, tmp_path_factory.mktemp("run") / "run", [HELD_OUT])
    return small_digits_zoo, run


def test_tune_a_new_dataset_end_to_end(zoo_and_run, tmp_path, capsys):
    _, run = zoo_and_run
    out = tmp_path / "out"
    assert main(["--run", str(run), "--dataset", HELD_OUT, "--data", f"digits:{HELD_OUT}",
                 "--out", str(out), *FAST]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "tune.json").read_text())
    ranking = tpred.load(run).recommend(tpred.zoo.hub.target_data(
        f"digits:{HELD_OUT}", zoo_and_run[0]).metadata, k=0)
    # the student and teachers are the run's top-1 and top-3 for the new dataset
    assert report["student"]["model"] == ranking["model"].iloc[0]
    assert [t["model"] for t in report["teachers"]] == list(ranking["model"].iloc[:3])
    assert not any(r["known"] for r in report["ranking"])          # all predicted: a new dataset
    pi = np.array([t["pi"] for t in report["teachers"]])
    logme = np.array([t["logme"] for t in report["teachers"]])
    np.testing.assert_allclose(pi, np.exp(logme / 0.1) / np.exp(logme / 0.1).sum(), rtol=1e-9)
    assert report["method"] == "btuning" and report["config"]["tradeoff"] == 100.0
    assert [p["step"] for p in report["curve"]] == [6, 12]
    assert report["test_accuracy"] == report["curve"][-1]["test_accuracy"]
    assert 0 <= report["test_accuracy"] <= 1 and report["train_size"] == 10
    assert report["seconds"]["total"] >= report["seconds"]["tune"] > 0
    assert (out / "curve.png").stat().st_size > 1000
    with safe_open(str(out / "student.safetensors"), framework="pt") as f:
        keys, meta = set(f.keys()), f.metadata()
        head = f.get_tensor("head.weight")
    assert head.shape[0] == 2                                      # 2 classes
    assert meta["student"] == report["student"]["model"] and meta["method"] == "btuning"
    assert {"head.weight", "head.bias"} < keys and any(k.startswith("backbone.") for k in keys)
    assert f"test accuracy {report['test_accuracy']:.4f}" in printed


def test_python_dash_m_tpred_tune_runs_as_a_command(zoo_and_run, tmp_path):
    """The command itself (a fresh interpreter, `python -m tpred.tune`), not only `main`."""
    zoo_root, run = zoo_and_run
    out = tmp_path / "out"
    root = str(Path(tpred.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, "-m", "tpred.tune", "--run", str(run), "--dataset",
                           HELD_OUT, "--data", f"digits:{HELD_OUT}", "--teachers", "2",
                           "--out", str(out), *FAST], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "tune.json").read_text())
    assert len(report["teachers"]) == 2 and report["method"] == "btuning"
    assert f"test accuracy {report['test_accuracy']:.4f}" in done.stdout
    assert {p.name for p in out.iterdir()} == {"student.safetensors", "tune.json", "curve.png"}
    # bad input through the command: one line on stderr, exit status 2, nothing written
    bad = subprocess.run([sys.executable, "-m", "tpred.tune", "--run", str(run), "--dataset",
                          "noisy_8b_20", "--out", str(tmp_path / "o2")], capture_output=True,
                         text=True, env=env, timeout=600)
    assert bad.returncode == 2 and not (tmp_path / "o2").exists()
    assert bad.stderr.strip().splitlines()[-1].startswith(PROG_ERROR + "dataset 'noisy_8b_20'")


def test_a_dataset_of_the_run_is_ranked_by_its_records(zoo_and_run, tmp_path):
    zoo_root, run = zoo_and_run
    out = tmp_path / "out"
    assert main(["--run", str(run), "--dataset", KNOWN, "--method", "finetune",
                 "--teachers", "2", "--out", str(out), *FAST]) == 0
    report = json.loads((out / "tune.json").read_text())
    records = tpred.load(run).zoo.records
    mine = records[records["dataset"] == KNOWN].sort_values("accuracy", ascending=False)
    assert report["data"] == f"digits:{zoo_root.resolve()}/{KNOWN}"
    assert report["student"]["model"] == mine["model"].iloc[0]
    assert all(r["known"] for r in report["ranking"])
    assert report["teachers"] == [] and report["student"]["logme"] is None   # plain fine-tuning


def test_a_teacher_that_cannot_be_loaded_is_skipped_with_a_warning(small_digits_zoo, copy_zoo,
                                                                    tmp_path, capsys):
    zoo = copy_zoo(small_digits_zoo)
    run = _fit_run(zoo, tmp_path / "run")
    ranking = tpred.load(run).recommend(KNOWN, k=0)
    second = ranking["model"].iloc[1]
    weights_path(zoo, second).write_bytes(b"broken")
    out = tmp_path / "out"
    assert main(["--run", str(run), "--dataset", KNOWN, "--out", str(out), *FAST]) == 0
    err = capsys.readouterr().err
    assert f"warning: teacher '{second}' skipped" in err and "not a readable safetensors" in err
    report = json.loads((out / "tune.json").read_text())
    assert [s["model"] for s in report["skipped_teachers"]] == [second]
    kept = [t for t in report["teachers"] if t["model"] != second]
    assert sum(t["pi"] for t in kept) == pytest.approx(1.0)
    assert [t["pi"] for t in report["teachers"] if t["model"] == second] == [0.0]
    # the broken file is the student's when asked for: then it is an error
    assert main(["--run", str(run), "--dataset", KNOWN, "--student", second,
                 "--out", str(tmp_path / "o2"), *FAST]) == 2
    assert "not a readable safetensors" in capsys.readouterr().err


@pytest.mark.parametrize("args,match", [
    (["--dataset", "noisy_8b_20"], "dataset 'noisy_8b_20' is not in the run's zoo .* give its "
                                   "data with --data SOURCE"),
    (["--dataset", HELD_OUT], f"dataset '{HELD_OUT}' is not in the run's zoo"),
    (["--dataset", KNOWN, "--teachers", "5"], "--teachers K=5: K must be between 1 and the "
                                              r"number of models of the run's zoo \(4\)"),
    (["--dataset", KNOWN, "--teachers", "0"], "--teachers K=0"),
    (["--dataset", KNOWN, "--student", "vit-b16"], "--student 'vit-b16' is neither 'top1' nor"),
    (["--dataset", KNOWN, "--data", "folder:/tmp/x"], "data source 'folder:/tmp/x': Could not "
                                                      "resolve prefix 'folder'"),
    (["--dataset", HELD_OUT, "--data", "digits:original_2x_5"], "unknown division 'x'"),
    (["--dataset", KNOWN, "--steps", "0"], "TuneConfig.steps must be >= 1"),
])
def test_bad_input_is_one_line_and_exit_status_2(zoo_and_run, tmp_path, capsys, args, match):
    _, run = zoo_and_run
    assert main(["--run", str(run), "--out", str(tmp_path / "o"), *FAST, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(PROG_ERROR)
    assert re.search(match, err[0]), err[0]
    assert not (tmp_path / "o").exists()


def test_a_run_folder_that_is_not_a_run_is_an_error(tmp_path, capsys):
    assert main(["--run", str(tmp_path), "--dataset", KNOWN, "--out", str(tmp_path / "o")]) == 2
    assert "no checkpoint here" in capsys.readouterr().err


def test_tuned_weights_load_into_the_students_network_and_a_new_head(zoo_and_run, tmp_path):
    from safetensors.torch import load_file

    from tpred.extract import load_model

    zoo_root, run = zoo_and_run
    out = tmp_path / "out"
    assert main(["--run", str(run), "--dataset", KNOWN, "--method", "finetune",
                 "--out", str(out), *FAST]) == 0
    report = json.loads((out / "tune.json").read_text())
    assert report["student"]["spec"] == f"digits:{zoo_root.resolve()}/{report['student']['model']}"
    labels = tpred.zoo.hub.target_data(KNOWN, zoo_root).metadata["labels"]
    assert report["classes"] == labels.split(", ")                 # class names, in head order
    state = load_file(str(out / "student.safetensors"))
    net = load_model(report["student"]["spec"]).module
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict({k[len("backbone."):]: v for k, v in state.items()
                         if k.startswith("backbone.")})
    head = torch.nn.Linear(state["head.weight"].shape[1], 4)
    head.load_state_dict({"weight": state["head.weight"], "bias": state["head.bias"]})
    # fine-tuned: the backbone moved away from the pre-trained weights
    assert any(not torch.equal(before[k], v) for k, v in net.state_dict().items())


def _image_folder(zoo_root, dataset, folder):
    """The target's images as PNG files in ImageFolder layout (train/ and test/)."""
    from PIL import Image

    from tpred.zoo.targets import CLASS_NAMES

    data = tpred.zoo.hub.target_data(dataset, zoo_root)
    for part, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        for i, (image, label) in enumerate(zip(x, y, strict=True)):
            path = folder / part / CLASS_NAMES[int(label)] / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = np.round(image[0].numpy() * 255).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(path)
    return data


def test_a_new_dataset_from_an_image_folder(zoo_and_run, tmp_path, capsys):
    zoo_root, run = zoo_and_run
    data = _image_folder(zoo_root, HELD_OUT, tmp_path / "my-digits")
    out = tmp_path / "out"
    base = ["--run", str(run), "--dataset", "my-digits", "--data", str(tmp_path / "my-digits"),
            "--out", str(out), *FAST]
    # an image folder does not say its domain, which the run's dataset features need
    assert main(base) == 2
    assert "need column(s) ['domain']" in capsys.readouterr().err
    row = tmp_path / "row.csv"
    row.write_text("dataset,domain,num_classes,samples_per_class,train_size,labels\n"
                   f"my-digits,original,2,5,10,\"{data.metadata['labels']}\"\n")
    assert main([*base, "--datasets", str(row)]) == 0
    report = json.loads((out / "tune.json").read_text())
    assert report["data"] == str(tmp_path / "my-digits") and report["train_size"] == 10
    assert report["classes"] == data.metadata["labels"].split(", ")
    assert report["test_size"] == len(data.y_test) and 0.4 < report["test_accuracy"] <= 1
