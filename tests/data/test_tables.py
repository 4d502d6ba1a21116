"""Reading a zoo's CSV files: every error names file, line, column and value."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tpred.config import NodeFeatureConfig, ZooConfig
from tpred.data import (
    check_columns,
    load_zoo,
    read_datasets,
    read_models,
    read_records,
    read_scores,
)
from tpred.data.tables import repo_root, resolve_path

BENCHMARKS = repo_root() / ".." / "shared" / "benchmarks"
MODELS = "model,family,num_parameters\nm0,cnn,1000\nm1,vit,20000\nm2,cnn,300\n"
DATASETS = ("dataset,record_column,domain,labels,num_classes\n"
            'd0,col_a,photo,"cat, dog",2\n'
            'd1,col_b,sketch,"car, tree, boat",3\n')
# accuracy = 0.5 + 0.1 * i - 0.05 * j for model i, dataset j; m2/d1 unknown
LONG = "model,dataset,accuracy\nm0,d0,0.5\nm0,d1,0.45\nm1,d0,0.6\nm1,d1,0.55\nm2,d0,0.7\n"
WIDE = ",d0,d1\nm0,0.5,0.45\nm1,0.6,0.55\nm2,0.7,\n"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture
def zoo_dir(tmp_path: Path) -> Path:
    write(tmp_path, "models.csv", MODELS)
    write(tmp_path, "datasets.csv", DATASETS)
    write(tmp_path, "records.csv", LONG)
    write(tmp_path, "wide.csv", WIDE)
    write(tmp_path, "scores.csv", "model,dataset,metric,value\nm0,d0,logme,1.5\n"
                                  "m0,d0,leep,-0.2\nm1,d1,logme,0.3\n")
    return tmp_path


def records(tmp_path: Path, text: str, **kwargs) -> pd.DataFrame:
    path = write(tmp_path, "rec.csv", text)
    return read_records(path, ["m0", "m1", "m2"], ["d0", "d1"], **kwargs)


def where(path_name: str, line: int, column: str) -> str:
    """Regex: the message names file, line and column (in that order)."""
    return rf"{re.escape(path_name)}, line {line}, column '{re.escape(column)}'"


# --------------------------------------------------------------------------------- happy paths
def test_load_zoo_reads_long_tables_with_typed_metadata(zoo_dir):
    zoo = load_zoo(ZooConfig(root=str(zoo_dir), scores="scores.csv"))
    assert list(zoo.model_ids) == ["m0", "m1", "m2"]
    assert zoo.models["num_parameters"].tolist() == [1000, 20000, 300]
    assert zoo.datasets["labels"].tolist() == ["cat, dog", "car, tree, boat"]
    np.testing.assert_allclose(zoo.records["accuracy"], [0.5, 0.45, 0.6, 0.55, 0.7])
    assert zoo.score_metrics == ["leep", "logme"]
    pairs = pd.DataFrame({"model": ["m0", "m1"], "dataset": ["d0", "d1"]})
    np.testing.assert_allclose(zoo.score_matrix(pairs, ["logme"]), [[1.5], [0.3]])


def test_wide_and_long_records_give_the_same_zoo(zoo_dir):
    long = load_zoo(ZooConfig(root=str(zoo_dir)))
    wide = load_zoo(ZooConfig(root=str(zoo_dir), records="wide.csv"))
    pd.testing.assert_frame_equal(long.records, wide.records)  # row-major = file order here
    assert len(wide.records) == 5  # the empty wide cell m2/d1 is no record


def test_wide_columns_may_be_record_column_aliases(zoo_dir):
    write(zoo_dir, "alias.csv", "id,col_b,col_a\nm0,0.45,0.5\nm1,0.55,0.6\nm2,,0.7\n")
    long = load_zoo(ZooConfig(root=str(zoo_dir)))
    wide = load_zoo(ZooConfig(root=str(zoo_dir), records="alias.csv", records_format="wide"))
    pd.testing.assert_frame_equal(long.records_matrix(), wide.records_matrix())


def test_percent_option_divides_by_100(tmp_path):
    text = "model,dataset,accuracy\nm0,d0,50\nm1,d1,100\nm2,d0,0\n"
    df = records(tmp_path, text, percent=True)
    np.testing.assert_allclose(df["accuracy"], [0.5, 1.0, 0.0])
    with pytest.raises(ValueError, match=where("rec.csv", 2, "accuracy")
                       + r".*'50'.*percentages need data.percent: true"):
        records(tmp_path, text)
    with pytest.raises(ValueError, match=where("rec.csv", 2, "accuracy") + r".*\[0, 100\].*'101'"):
        records(tmp_path, "model,dataset,accuracy\nm0,d0,101\n", percent=True)


def test_blank_lines_are_skipped_but_counted(tmp_path):
    with pytest.raises(ValueError, match=where("rec.csv", 4, "accuracy") + r".*'1.5'"):
        records(tmp_path, "model,dataset,accuracy\nm0,d0,0.5\n\nm1,d0,1.5\n")


def test_relative_root_resolves_against_base_dir(zoo_dir):
    zoo = load_zoo(ZooConfig(root=zoo_dir.name), base_dir=zoo_dir.parent)
    assert zoo.num_models == 3
    assert resolve_path("x", Path("/a")) == Path("/a/x")
    assert resolve_path("/b/x", Path("/a")) == Path("/b/x")


def test_readers_return_ids_as_index(zoo_dir):
    assert read_models(zoo_dir / "models.csv").index.name == "model"
    assert list(read_datasets(zoo_dir / "datasets.csv").index) == ["d0", "d1"]
    scores = read_scores(zoo_dir / "scores.csv", ["m0", "m1", "m2"], ["d0", "d1"])
    assert scores["value"].tolist() == [1.5, -0.2, 0.3]


# ------------------------------------------------------------------------------- error cases
def test_unknown_model_id(tmp_path):
    with pytest.raises(ValueError, match=where("rec.csv", 3, "model") + r".*'m9'.*models.csv"):
        records(tmp_path, "model,dataset,accuracy\nm0,d0,0.5\nm9,d0,0.5\n")


def test_unknown_dataset_id(tmp_path):
    with pytest.raises(ValueError, match=where("rec.csv", 2, "dataset") + r".*'d7'.*datasets.csv"):
        records(tmp_path, "model,dataset,accuracy\nm0,d7,0.5\n")


def test_drop_unknown_warns_with_the_count(tmp_path):
    text = "model,dataset,accuracy\nm0,d0,0.5\nm9,d0,0.5\nm1,d8,0.5\nm1,d1,0.4\n"
    with pytest.warns(UserWarning, match=r"rec.csv: dropped 2 row\(s\)"):
        df = records(tmp_path, text, drop_unknown=True)
    assert df[["model", "dataset"]].values.tolist() == [["m0", "d0"], ["m1", "d1"]]


def test_unknown_wide_model_row_and_column(tmp_path):
    with pytest.raises(ValueError, match=where("rec.csv", 3, "") + r": model 'm9'"):
        records(tmp_path, ",d0\nm0,0.5\nm9,0.5\n")
    with pytest.raises(ValueError, match=where("rec.csv", 1, "task1_x") + r": not a dataset id"):
        records(tmp_path, ",d0,task1_x\nm0,0.5,0.5\n")
    with pytest.warns(UserWarning, match=r"dropped 1 column"):
        df = records(tmp_path, ",d0,task1_x\nm0,0.5,0.5\n", drop_unknown=True)
    assert df.values.tolist() == [["m0", "d0", 0.5]]


def test_duplicate_pair(tmp_path):
    with pytest.raises(ValueError, match=r"rec.csv, line 4, columns \['model', 'dataset'\]: "
                                         r"duplicate \['m0', 'd0'\] \(first on line 2"):
        records(tmp_path, "model,dataset,accuracy\nm0,d0,0.5\nm1,d0,0.5\nm0,d0,0.6\n")


def test_duplicate_pair_in_wide_rows_and_columns(tmp_path):
    with pytest.raises(ValueError, match=r"rec.csv, line 3, columns \['model'\]: duplicate "
                                         r"\['m0'\]"):
        records(tmp_path, ",d0\nm0,0.5\nm0,0.6\n")
    with pytest.raises(ValueError, match=r"rec.csv, line 1: column 'd0' appears more than once"):
        records(tmp_path, ",d0,d0\nm0,0.5,0.6\n")
    path = write(tmp_path, "alias.csv", ",d0,col_a\nm0,0.5,0.6\n")
    with pytest.raises(ValueError, match=where("alias.csv", 1, "col_a") + r": dataset 'd0' "
                                         r"appears twice"):
        read_records(path, ["m0"], ["d0"], aliases={"col_a": "d0"})


def test_duplicate_ids_in_models_and_datasets(tmp_path):
    path = write(tmp_path, "models.csv", "model,family\nm0,cnn\nm1,vit\nm0,cnn\n")
    with pytest.raises(ValueError, match=where("models.csv", 4, "model") + r": id 'm0' appears "
                                         r"more than once \(first on line 2"):
        read_models(path)
    path = write(tmp_path, "datasets.csv", "domain,dataset\nphoto,d0\nphoto,d0\n")
    with pytest.raises(ValueError, match=where("datasets.csv", 3, "dataset") + r": id 'd0'"):
        read_datasets(path)


def test_empty_id(tmp_path):
    path = write(tmp_path, "models.csv", "model,family\nm0,cnn\n,vit\n")
    with pytest.raises(ValueError, match=where("models.csv", 3, "model") + r": empty id ''"):
        read_models(path)


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "", "abc"])
def test_non_finite_or_empty_accuracy(tmp_path, value):
    with pytest.raises(ValueError, match=where("rec.csv", 3, "accuracy")
                       + rf": accuracy must be a number in \[0, 1\], got '{re.escape(value)}'"):
        records(tmp_path, f"model,dataset,accuracy\nm0,d0,0.5\nm1,d0,{value}\n")


@pytest.mark.parametrize("value", ["1.01", "-0.1", "2"])
def test_accuracy_outside_unit_interval(tmp_path, value):
    with pytest.raises(ValueError, match=where("rec.csv", 2, "accuracy") + rf".*got '{value}'"):
        records(tmp_path, f"model,dataset,accuracy\nm0,d0,{value}\n")


def test_bad_wide_cell_names_its_column(tmp_path):
    with pytest.raises(ValueError, match=where("rec.csv", 3, "d1") + r".*got 'inf'"):
        records(tmp_path, ",d0,d1\nm0,0.5,0.5\nm1,0.5,inf\n")


def test_blank_wide_cells_are_no_record(tmp_path):
    df = records(tmp_path, ",d0,d1\nm0,0.5,NA\nm1, ,0.4\nm2,n/a,null\n")
    assert df.values.tolist() == [["m0", "d0", 0.5], ["m1", "d1", 0.4]]


def test_missing_id_column(tmp_path):
    path = write(tmp_path, "models.csv", "name,family\nm0,cnn\n")
    with pytest.raises(ValueError, match=r"models.csv: missing column\(s\) \['model'\].*found "
                                         r"\['name', 'family'\]"):
        read_models(path)
    with pytest.raises(ValueError, match=r"rec.csv: missing column\(s\) \['model'\]"):
        records(tmp_path, "mdl,dataset,accuracy\nm0,d0,0.5\n")
    with pytest.raises(ValueError, match=r"rec.csv: missing column\(s\) \['accuracy'\]"):
        records(tmp_path, "model,dataset\nm0,d0\n", fmt="long")


@pytest.mark.parametrize("text, what", [("", r"0 bytes"), ("model,dataset,accuracy\n", "no rows"),
                                        ("\n\n", "only blank lines")])
def test_empty_file(tmp_path, text, what):
    with pytest.raises(ValueError, match=rf"rec.csv: (empty file \()?{what}"):
        records(tmp_path, text)
    path = write(tmp_path, "models.csv", text)
    with pytest.raises(ValueError, match=rf"models.csv: (empty file \()?{what}"):
        read_models(path)


def test_ragged_row(tmp_path):
    with pytest.raises(ValueError, match=r"rec.csv, line 3: expected 3 fields .* got 2"):
        records(tmp_path, "model,dataset,accuracy\nm0,d0,0.5\nm1,d0\n")


def test_bad_fmt_and_missing_files(tmp_path, zoo_dir):
    with pytest.raises(ValueError, match=r"fmt must be 'auto', 'long' or 'wide', got 'tall'"):
        records(tmp_path, LONG, fmt="tall")
    with pytest.raises(ValueError, match=r"nothere.csv: file not found"):
        read_models(tmp_path / "nothere.csv")
    with pytest.raises(ValueError, match=r"zoo folder .*nowhere.* does not exist"):
        load_zoo(ZooConfig(root=str(tmp_path / "nowhere")))
    with pytest.raises(ValueError, match=r"needs the model id column and at least one dataset"):
        records(tmp_path, "id\nm0\n", fmt="wide")


def test_score_errors(zoo_dir):
    ids = (["m0", "m1", "m2"], ["d0", "d1"])
    path = write(zoo_dir, "s.csv", "model,dataset,metric,value\nm0,d0,logme,1\nm0,d0,leep,inf\n")
    with pytest.raises(ValueError, match=where("s.csv", 3, "value") + r".*finite number, got "
                                         r"'inf'"):
        read_scores(path, *ids)
    path = write(zoo_dir, "s.csv", "model,dataset,metric,value\nm0,d0,logme,1\nm0,d0,logme,2\n")
    with pytest.raises(ValueError, match=r"s.csv, line 3, columns \['model', 'dataset', "
                                         r"'metric'\]: duplicate"):
        read_scores(path, *ids)
    path = write(zoo_dir, "s.csv", "model,dataset,metric,value\nm5,d0,logme,1\n")
    with pytest.raises(ValueError, match=where("s.csv", 2, "model") + r": model 'm5'"):
        read_scores(path, *ids)
    path = write(zoo_dir, "s.csv", "model,dataset,metric,value\nm0,d0,,1\n")
    with pytest.raises(ValueError, match=where("s.csv", 2, "metric") + r": empty metric name"):
        read_scores(path, *ids)
    path = write(zoo_dir, "s.csv", "model,dataset,score\nm0,d0,1\n")
    with pytest.raises(ValueError, match=r"s.csv: missing column\(s\) \['metric', 'value'\]"):
        read_scores(path, *ids)


# --------------------------------------------------------------------- configured columns
def test_missing_configured_column(zoo_dir):
    cfg = NodeFeatureConfig(numeric=("num_classes", "train_size"))
    with pytest.raises(ValueError, match=r"datasets.csv: configured feature column\(s\) "
                                         r"\['train_size'\] not found; columns found: "
                                         r"\['record_column', 'domain', 'labels', 'num_classes'\]"):
        load_zoo(ZooConfig(root=str(zoo_dir)), dataset_features=cfg)


def test_non_numeric_value_in_numeric_column(zoo_dir):
    write(zoo_dir, "models.csv", "model,family,num_parameters\nm0,cnn,1000\nm1,vit,big\nm2,cnn,3\n")
    with pytest.raises(ValueError, match=where("models.csv", 3, "num_parameters")
                       + r": a numeric feature column must hold finite numbers \(or blanks\), "
                         r"got 'big'"):
        load_zoo(ZooConfig(root=str(zoo_dir)),
                 model_features=NodeFeatureConfig(numeric=("num_parameters",)))


def test_negative_value_in_log_column(tmp_path):
    frame = pd.DataFrame({"size": [3, -1]}, index=pd.Index(["a", "b"], name="model"))
    with pytest.raises(ValueError, match=where("m.csv", 3, "size") + r": a log-scaled column "
                                         r"must be >= 0, got '-1'"):
        check_columns(frame, NodeFeatureConfig(numeric=("size",), log=("size",)), "m.csv")


def test_text_column_that_is_not_text(zoo_dir):
    with pytest.raises(ValueError, match=r"datasets.csv, column 'num_classes': declared a text "
                                         r"column, but every value is a number \(line 2: '2'\)"):
        load_zoo(ZooConfig(root=str(zoo_dir)),
                 dataset_features=NodeFeatureConfig(text=("labels", "num_classes")))


def test_empty_text_value_is_blank(zoo_dir):
    write(zoo_dir, "datasets.csv", "dataset,labels\nd0,\"cat, dog\"\nd1,\n")
    zoo = load_zoo(ZooConfig(root=str(zoo_dir)),
                   dataset_features=NodeFeatureConfig(text=("labels",)))
    assert zoo.datasets["labels"].isna().tolist() == [False, True]
    with pytest.raises(ValueError, match=where("datasets.csv", 3, "labels")
                       + r": blank value '' and dataset_features.impute is 'error' \(1 blank "
                         r"cell\(s\) in this column\); set dataset_features.impute: median"):
        load_zoo(ZooConfig(root=str(zoo_dir)),
                 dataset_features=NodeFeatureConfig(text=("labels",), impute="error"))


# ---------------------------------------------------------------------------- benchmark data
needs_benchmarks = pytest.mark.skipif(not BENCHMARKS.is_dir(),
                                      reason=f"benchmark data not found at {BENCHMARKS}")


@needs_benchmarks
def test_domainnet270_loads_long_and_wide_alike():
    root = str(BENCHMARKS / "domainnet270")
    features = NodeFeatureConfig(numeric=("num_classes", "train_size"), log=("train_size",),
                                 categorical=("domain",), text=("labels", "domain"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        long = load_zoo(ZooConfig(root=root), dataset_features=features)
        wide = load_zoo(ZooConfig(root=root, records="records_wide_original.csv"))
    assert (long.num_models, long.num_datasets, len(long.records)) == (10, 270, 2700)
    pd.testing.assert_frame_equal(long.records_matrix(), wide.records_matrix())
    assert long.records["accuracy"].between(0, 1).all()


@needs_benchmarks
def test_sfda11_loads():
    zoo = load_zoo(ZooConfig(root=str(BENCHMARKS / "sfda11"), scores=None),
                   model_features=NodeFeatureConfig(numeric=("num_parameters", "gflops"),
                                                    log=("num_parameters",),
                                                    categorical=("architecture_family",)))
    assert (zoo.num_models, zoo.num_datasets, len(zoo.records)) == (11, 11, 121)
    assert zoo.scores.empty
