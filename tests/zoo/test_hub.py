"""tpred.zoo.hub: the digits zoo's networks and targets re-created from zoo.json and weights/."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from tpred.zoo.build import default_plan
from tpred.zoo.hub import (
    load_model,
    parse_target,
    read_manifest,
    source_network,
    target_data,
    weights_path,
)


def _state(path):
    return load_file(str(path))


def test_the_build_writes_every_networks_weights_and_its_manifest(small_digits_zoo):
    plan, seed = read_manifest(small_digits_zoo)
    assert (plan, seed) == (default_plan(small=True), 0)
    models = pd.read_csv(small_digits_zoo / "models.csv")["model"]
    files = sorted(p.stem for p in (small_digits_zoo / "weights").glob("*.safetensors"))
    assert files == sorted(models)


def test_a_loaded_network_gives_the_feature_files_of_the_build_exactly(small_digits_zoo):
    datasets = pd.read_csv(small_digits_zoo / "datasets.csv").set_index("dataset")
    for model, dataset in [("cnn-s-inverted", "inverted_4c_10"), ("resnet-xs-original-04",
                                                                   "original_2a_5")]:
        net = load_model(f"digits:{model}", root=small_digits_zoo)
        state = _state(weights_path(small_digits_zoo, model))
        assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
        data = target_data(f"digits:{dataset}", small_digits_zoo)
        with torch.no_grad():
            features = net.features(data.x_train).numpy()
        with np.load(small_digits_zoo / "features" / model / f"{dataset}.npz") as npz:
            np.testing.assert_array_equal(features, npz["features"])
            np.testing.assert_array_equal(data.y_train.numpy(), npz["labels"])
        row = datasets.loc[dataset]
        assert data.metadata == {"dataset": dataset, **{k: (v.item() if hasattr(v, "item")
                                                            else v) for k, v in row.items()}}
        assert len(data.y_test) == row["test_size"]


def test_absent_weights_are_retrained_bit_identically_and_written(small_digits_zoo, copy_zoo):
    zoo = copy_zoo(small_digits_zoo)
    path = weights_path(zoo, "resnet-xs-original-04")     # BatchNorm: running stats too
    built = _state(path)
    path.unlink()
    net = source_network("resnet-xs-original-04", zoo)
    assert path.is_file()
    again = net.state_dict()
    assert built.keys() == again.keys()
    assert all(torch.equal(built[k], again[k]) for k in built)
    assert not net.training


def test_weights_of_another_build_are_retrained_with_a_warning(small_digits_zoo, copy_zoo):
    zoo = copy_zoo(small_digits_zoo)
    path = weights_path(zoo, "mlp-weak")
    built = _state(path)
    meta = {"model": "mlp-weak", "seed": "1", "source": "{}"}
    save_file({k: torch.zeros_like(v) for k, v in built.items()}, str(path), metadata=meta)
    with pytest.warns(UserWarning, match="written for another build"):
        net = source_network("mlp-weak", zoo)
    assert all(torch.equal(built[k], v) for k, v in net.state_dict().items())
    assert all(torch.equal(built[k], v) for k, v in _state(path).items())  # re-written


def test_an_unreadable_weights_file_is_an_error_not_replaced(small_digits_zoo, copy_zoo):
    zoo = copy_zoo(small_digits_zoo)
    path = weights_path(zoo, "mlp-weak")
    path.write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match=r"mlp-weak.safetensors: not a readable safetensors"):
        load_model("digits:mlp-weak", root=zoo)
    assert path.read_bytes() == b"not safetensors"


def test_target_data_splits_the_target_pool_by_class(small_digits_zoo):
    data = target_data("original_4a_10", small_digits_zoo)
    classes = sorted(np.unique(data.y_train.numpy()))
    assert np.bincount(data.y_train.numpy())[classes].tolist() == [10] * 4
    assert set(np.unique(data.y_test.numpy())) == set(classes)
    assert data.x_train.shape == (40, 1, 8, 8) and data.x_train.dtype == torch.float32
    # no image is in both parts (the rendered images of the original domain are distinct)
    train = {x.numpy().tobytes() for x in data.x_train}
    assert not any(x.numpy().tobytes() in train for x in data.x_test)


def test_a_target_outside_the_plan_is_re_created_with_the_same_label_sets(small_digits_zoo):
    _, seed = read_manifest(small_digits_zoo)
    # the small plan has domains original and inverted, and 5 or 10 images per class
    rotated = target_data("digits:rotated_2a_7", small_digits_zoo)
    original = target_data("digits:original_2a_5", small_digits_zoo)
    assert rotated.metadata["labels"] == original.metadata["labels"]
    assert rotated.metadata["domain"] == "rotated" and len(rotated.y_train) == 14
    assert parse_target("noisy_8c_20", seed).classes == parse_target("shifted_8c_5", seed).classes


@pytest.mark.parametrize("call,match", [
    (lambda z: load_model("cnn-s-inverted", root=z), "expected a model spec 'digits:<model-id>'"),
    (lambda z: load_model("digits:", root=z), "expected a model spec"),
    (lambda z: load_model("digits:vit-huge", root=z), "no model 'vit-huge'; it has"),
    (lambda z: target_data("digits:original-2a-5", z), "not of the form"),
    (lambda z: target_data("digits:sepia_2a_5", z), "unknown domain 'sepia'"),
    (lambda z: target_data("digits:original_2d_5", z), "unknown division 'd'"),
    (lambda z: target_data("digits:original_11a_5", z), "num_classes must be in 2..10"),
    (lambda z: target_data("digits:original_2a_500", z), "leaves no test image"),
])
def test_bad_specs_and_ids_are_clear_errors(small_digits_zoo, call, match):
    with pytest.raises(ValueError, match=match):
        call(small_digits_zoo)


def test_a_folder_without_a_manifest_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no zoo.json here"):
        load_model("digits:mlp-weak", root=tmp_path)
    (tmp_path / "zoo.json").write_text(json.dumps({"seed": 0}))
    with pytest.raises(ValueError, match="not a digits zoo manifest"):
        read_manifest(tmp_path)
