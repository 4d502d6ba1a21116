"""Data sources: image folders, text tables, `datasets` (on disk and by name), subsampling, the
source registry, and every error `tpred.extract.sources` raises."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from tpred.extract import SOURCES, DataSource, Split, open_source, register_source
from tpred.extract.demo import write_digit_folder


def test_image_folder_with_train_and_test(digit_folder):
    data = open_source(digit_folder)
    assert (data.name, data.kind, data.modality) == ("digits3", "image-folder", "image")
    assert data.classes == ("one", "two", "zero")          # sorted folder names
    assert len(data.train) == 18 and len(data.test) == 9
    assert data.train.counts(3).tolist() == [6, 6, 6]
    image = data.train.item(0)
    assert image.size == (16, 16) and image.mode == "L"
    assert data.train.describe(0).endswith(".png")
    assert data.describe() == {
        "dataset": "digits3", "source": str(digit_folder), "kind": "image-folder",
        "modality": "image", "num_classes": 3, "samples_per_class": 6, "train_size": 18,
        "test_size": 9, "labels": "one, two, zero"}


def test_image_folder_without_splits_is_all_train(tmp_path, digit_folder):
    shutil.copytree(digit_folder / "train", tmp_path / "flat")
    data = open_source(tmp_path / "flat", name="renamed")
    assert data.test is None and len(data.train) == 18 and data.name == "renamed"
    assert data.describe()["test_size"] == ""


def test_empty_class_folder_and_mismatched_splits_are_errors(tmp_path, digit_folder):
    root = shutil.copytree(digit_folder, tmp_path / "d")
    (root / "train" / "seven").mkdir()
    with pytest.raises(ValueError, match=r"train: class folder\(s\) \['seven'\] hold no image"):
        open_source(root)
    shutil.rmtree(root / "train" / "seven")
    shutil.rmtree(root / "test" / "two")
    with pytest.raises(ValueError, match=r"labels do not match between splits \(only in train: "
                                         r"\['two'\]; only in test: none\)"):
        open_source(root)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no class folder"):
        open_source(empty)


def test_max_per_class_is_a_seeded_stratified_subsample(digit_folder):
    a = open_source(digit_folder, max_per_class=4, seed=1)
    b = open_source(digit_folder, max_per_class=4, seed=1)
    c = open_source(digit_folder, max_per_class=4, seed=2)
    assert a.train.counts(3).tolist() == [4, 4, 4] and a.test.counts(3).tolist() == [3, 3, 3]
    assert a.train.items == b.train.items and a.train.items != c.train.items
    assert list(a.train.labels) == sorted(a.train.labels)  # original order kept
    assert a.notes == ["train: 12 of 18 items kept (max_per_class=4, seed=1)"]
    with pytest.raises(ValueError, match="max_per_class must be >= 1"):
        open_source(digit_folder, max_per_class=0)


def test_text_table_with_a_split_column(text_csv):
    data = open_source(text_csv)
    assert (data.kind, data.modality, data.classes) == ("text-table", "text",
                                                         ("food", "sports", "weather"))
    assert len(data.train) == 18 and len(data.test) == 9
    frame = pd.read_csv(text_csv)
    first_train = frame.index[frame["split"] == "train"][0]
    assert data.train.item(0) == frame.loc[first_train, "text"]
    assert data.train.describe(0) == f"{text_csv}, line {first_train + 2}"


def test_text_table_without_split_column_is_split_stratified_and_seeded(tmp_path):
    rows = [(f"text {i}", "ab"[i % 2]) for i in range(20)]
    pd.DataFrame(rows, columns=["sentence", "topic"]).to_json(tmp_path / "t.jsonl",
                                                              orient="records", lines=True)
    kwargs = dict(text_column="sentence", label_column="topic", test_fraction=0.3)
    a = open_source(tmp_path / "t.jsonl", seed=0, **kwargs)
    b = open_source(tmp_path / "t.jsonl", seed=0, **kwargs)
    c = open_source(tmp_path / "t.jsonl", seed=5, **kwargs)
    assert len(a.train) == 14 and len(a.test) == 6
    assert a.test.counts(2).tolist() == [3, 3]
    assert a.test.items == b.test.items and a.test.items != c.test.items
    assert a.train.describe(0) == f"{tmp_path / 't.jsonl'}, line {a.train.items[0] + 1}"
    assert "stratified split" in a.notes[0]


def test_text_table_errors_name_file_line_column_and_value(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"text": ["a", "b"], "label": ["x", "y"]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"no text column 'txt' \(--text-column\); columns "
                                         r"found: \['text', 'label'\]"):
        open_source(path, text_column="txt")
    with pytest.raises(ValueError, match="class 'x' has a single row"):
        open_source(path)
    pd.DataFrame({"text": ["a", "b", "c"], "label": ["x", "", "y"]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"t.csv, line 3, column 'label': empty label"):
        open_source(path)
    pd.DataFrame({"text": ["a", "b", "c"], "label": ["x", "y", "x"],
                  "split": ["train", "train", "tset"]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"line 4, column 'split': must be 'train' or 'test', "
                                         r"got 'tset'"):
        open_source(path)
    pd.DataFrame({"text": ["a", "b", "c"], "label": ["x", "y", "z"],
                  "split": ["train", "train", "test"]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"labels do not match between splits \(only in train: "
                                         r"\['x', 'y'\]; only in test: \['z'\]\)"):
        open_source(path)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="not a data source"):
        open_source(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="no such file or folder"):
        open_source(tmp_path / "absent")
    with pytest.raises(ValueError, match="Could not resolve prefix 'kaggle'"):
        open_source("kaggle:cats")


def _hf_text(datasets):
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos"])})
    train = datasets.Dataset.from_dict({"text": ["good", "bad", "fine", "awful"],
                                        "label": [1, 0, 1, 0]}, features=features)
    test = datasets.Dataset.from_dict({"text": ["great", "poor"], "label": [1, 0]},
                                      features=features)
    return datasets.DatasetDict(train=train, test=test)


def test_datasets_on_disk_text_and_image(tmp_path, digit_folder):
    datasets = pytest.importorskip("datasets")
    _hf_text(datasets).save_to_disk(tmp_path / "reviews")
    data = open_source(tmp_path / "reviews")
    assert (data.kind, data.modality, data.classes) == ("datasets", "text", ("neg", "pos"))
    assert data.train.item(2) == "fine" and data.test.labels.tolist() == [1, 0]
    assert data.test.describe(1) == f"{tmp_path / 'reviews'} [test] row 1"

    images = open_source(digit_folder).train
    paths = [images.describe(i) for i in range(len(images))]
    ds = datasets.Dataset.from_dict(
        {"img": paths, "digit": [str(v) for v in images.labels]}).cast_column("img",
                                                                              datasets.Image())
    ds.save_to_disk(tmp_path / "imgs")
    data = open_source(tmp_path / "imgs", label_column="digit")
    assert data.modality == "image" and data.test is None and data.classes == ("0", "1", "2")
    assert data.train.item(0).size == (16, 16)
    with pytest.raises(ValueError, match=r"no label column 'label' \(--label-column\)"):
        open_source(tmp_path / "imgs")
    with pytest.raises(ValueError, match=r"no image column 'picture'"):
        open_source(tmp_path / "imgs", label_column="digit", image_column="picture")


def test_hub_datasets_go_through_load_dataset(monkeypatch):
    datasets = pytest.importorskip("datasets")
    asked = []

    def fake_load(name):
        asked.append(name)
        return _hf_text(datasets)

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    data = open_source("hf:someone/reviews")
    assert asked == ["someone/reviews"] and data.name == "someone__reviews"
    assert data.location == "hf:someone/reviews" and len(data.train) == 4


def test_register_source_adds_a_prefix():
    def opener(ref, options):
        split = Split("train", np.array([0, 1, 0]), ["a", "b", "c"], str.upper)
        return DataSource(ref, f"letters:{ref}", "letters", "text", ("x", "y"), split)

    register_source("letters", opener)
    try:
        data = open_source("letters:abc")
        assert data.train.item(1) == "B" and data.name == "abc"
        with pytest.raises(ValueError, match="already registered"):
            register_source("letters", opener)
    finally:
        SOURCES.pop("letters")
    with pytest.raises(ValueError, match="lower-case word"):
        register_source("Letters!", opener)


def test_a_single_class_source_is_an_error(tmp_path):
    write_digit_folder(tmp_path / "one", classes=(4,), per_class=2, test_per_class=1)
    with pytest.raises(ValueError, match=r"needs at least 2 classes, found \['four'\]"):
        open_source(tmp_path / "one")
