"""Real, incomplete tables: blank metadata, repeated records, percentages, odd files."""

from __future__ import annotations

import codecs
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tpred.config import NodeFeatureConfig, ZooConfig
from tpred.data import load_zoo, read_models, read_records
from tpred.data.tables import blank_cells, blank_rows, describe_blanks, read_csv_rows

IDS = (["m0", "m1", "m2"], ["d0", "d1"])
FEATURES = NodeFeatureConfig(numeric=("num_parameters", "top1"), log=("num_parameters",),
                             categorical=("family",), text=("card",))


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


@pytest.fixture
def zoo_dir(tmp_path: Path) -> Path:
    write(tmp_path, "models.csv", "model,family,num_parameters,top1,card\n"
                                  "m0,cnn,1000,0.7,a small cnn\n"
                                  "m1,,NA,n/a,\n"
                                  "m2,vit,null,0.8,a vit\n")
    write(tmp_path, "datasets.csv", "dataset,domain\nd0,photo\nd1,sketch\n")
    write(tmp_path, "records.csv", "model,dataset,accuracy\nm0,d0,0.5\nm1,d0,0.6\nm2,d1,0.7\n")
    return tmp_path


# ---------------------------------------------------------------------------- blank metadata
def test_blank_cells_are_read_as_missing_values(zoo_dir):
    models = read_models(zoo_dir / "models.csv")
    assert models["num_parameters"].dtype == np.float64  # numeric despite NA and null
    np.testing.assert_array_equal(models["num_parameters"].isna(), [False, True, True])
    assert models["top1"].tolist()[::2] == [0.7, 0.8] and np.isnan(models["top1"].iloc[1])
    assert models["family"].isna().tolist() == [False, True, False]
    assert models["card"].tolist()[0] == "a small cnn" and pd.isna(models["card"].iloc[1])


def test_blank_rows_are_the_rows_of_blank_cells_in_configured_columns(zoo_dir):
    models = read_models(zoo_dir / "models.csv")
    # row 1 is blank in num_parameters, top1, family and card; row 2 in num_parameters only
    np.testing.assert_array_equal(blank_rows(models, FEATURES), [False, True, True])
    np.testing.assert_array_equal(blank_rows(models, NodeFeatureConfig(numeric=("top1",))),
                                  [False, True, False])
    assert not blank_rows(models, NodeFeatureConfig()).any()            # no configured column


def test_load_zoo_says_once_how_many_cells_of_which_columns_are_imputed(zoo_dir, caplog):
    with caplog.at_level(logging.INFO, logger="tpred.data.tables"):
        zoo = load_zoo(ZooConfig(root=str(zoo_dir)), model_features=FEATURES)
    lines = [r.getMessage() for r in caplog.records if "imputed" in r.getMessage()]
    assert lines == ["models.csv: 5 blank cell(s) imputed: num_parameters 2, top1 1, family 1, "
                     "card 1 (numbers: the median of the training models, flagged by a "
                     "missing-indicator feature where training had blanks; categories: their "
                     "own 'missing' category; text: the empty text)"]
    assert blank_cells(zoo.models, FEATURES) == {"num_parameters": 2, "top1": 1, "family": 1,
                                                 "card": 1}
    assert describe_blanks({}, FEATURES, "models.csv", "x") is None


def test_impute_error_names_file_line_column_and_the_option(zoo_dir):
    strict = NodeFeatureConfig(numeric=("num_parameters",), impute="error")
    with pytest.raises(ValueError, match=r"models.csv, line 3, column 'num_parameters': blank "
                                         r"value '' and model_features.impute is 'error' \(2 "
                                         r"blank cell\(s\) in this column\); set "
                                         r"model_features.impute: median"):
        load_zoo(ZooConfig(root=str(zoo_dir)), model_features=strict)


def test_a_word_in_a_numeric_column_is_still_an_error(zoo_dir):
    write(zoo_dir, "models.csv", "model,num_parameters\nm0,1\nm1,NA\nm2,many\n")
    with pytest.raises(ValueError, match=r"models.csv, line 4, column 'num_parameters': a numeric "
                                         r"feature column must hold finite numbers \(or "
                                         r"blanks\), got 'many'"):
        load_zoo(ZooConfig(root=str(zoo_dir)),
                 model_features=NodeFeatureConfig(numeric=("num_parameters",)))


# --------------------------------------------------------------------------- repeated records
REPEATED = "model,dataset,accuracy\nm0,d0,0.5\nm1,d0,0.6\nm0,d0,0.7\nm0,d0,0.6\nm1,d1,0.4\n"


def test_repeated_records_are_an_error_naming_both_lines_and_the_option(tmp_path):
    path = write(tmp_path, "rec.csv", REPEATED)
    with pytest.raises(ValueError, match=r"rec.csv, line 4, columns \['model', 'dataset'\]: "
                                         r"duplicate \['m0', 'd0'\] \(first on line 2; 2 "
                                         r"duplicate row\(s\)\); set data.duplicates to mean, "
                                         r"max or last"):
        read_records(path, *IDS)


@pytest.mark.parametrize("how, value", [("mean", 0.6), ("max", 0.7), ("last", 0.6)])
def test_repeated_records_are_combined_as_asked(tmp_path, how, value, caplog):
    path = write(tmp_path, "rec.csv", REPEATED)
    with caplog.at_level(logging.INFO, logger="tpred.data.tables"):
        df = read_records(path, *IDS, duplicates=how)
    assert df[["model", "dataset"]].values.tolist() == [["m0", "d0"], ["m1", "d0"], ["m1", "d1"]]
    np.testing.assert_allclose(df["accuracy"], [value, 0.6, 0.4])
    assert re.search(rf"rec.csv: 1 pair\(s\) have several records \(3 rows\); combined by their "
                     rf"{how}", caplog.text)


def test_repeated_wide_rows_and_columns_are_combined(tmp_path):
    path = write(tmp_path, "wide.csv", ",d0,d1,col_a\nm0,0.5,,0.7\nm1,0.6,0.4,\nm0,0.3,0.2,\n")
    with pytest.raises(ValueError, match=r"wide.csv, line 1, column 'col_a': dataset 'd0' appears "
                                         r"twice.*data.duplicates"):
        read_records(path, *IDS, aliases={"col_a": "d0"})
    df = read_records(path, *IDS, aliases={"col_a": "d0"}, duplicates="mean")
    got = {(m, d): a for m, d, a in df.itertuples(index=False)}
    assert got == pytest.approx({("m0", "d0"): 0.5, ("m0", "d1"): 0.2, ("m1", "d0"): 0.6,
                                 ("m1", "d1"): 0.4})


def test_duplicates_setting_reaches_the_reader(zoo_dir):
    write(zoo_dir, "records.csv", REPEATED)
    zoo = load_zoo(ZooConfig(root=str(zoo_dir), duplicates="max"))
    assert zoo.accuracy(pd.DataFrame({"model": ["m0"], "dataset": ["d0"]})).tolist() == [0.7]


# -------------------------------------------------------------------------------- percentages
def test_percent_on_fractions_is_an_error(tmp_path):
    path = write(tmp_path, "rec.csv", "model,dataset,accuracy\nm0,d0,0.5\nm1,d0,0.93\n")
    with pytest.raises(ValueError, match=r"rec.csv: data.percent is true, but every accuracy is "
                                         r"within \[0, 1\] \(the largest, line 3, column "
                                         r"'accuracy': '0.93'\).*set data.percent: false"):
        read_records(path, *IDS, percent=True)


def test_drop_unknown_setting_reaches_the_reader(zoo_dir):
    write(zoo_dir, "records.csv", "model,dataset,accuracy\nm0,d0,0.5\nm9,d0,0.6\n")
    with pytest.raises(ValueError, match=r"records.csv, line 3, column 'model': model 'm9' is not "
                                         r"in models.csv.*data.drop_unknown: true drops them"):
        load_zoo(ZooConfig(root=str(zoo_dir)))
    with pytest.warns(UserWarning, match=r"dropped 1 row\(s\)"):
        zoo = load_zoo(ZooConfig(root=str(zoo_dir), drop_unknown=True))
    assert len(zoo.records) == 1


# ------------------------------------------------------------------------------------- files
def test_a_file_that_is_not_utf8_names_the_line_and_the_encodings_tried(tmp_path):
    path = write(tmp_path, "models.csv", "model,family\nm0,cnn\nm1,r\xe9seau\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"models.csv, line 3: the file is not utf-8 text "
                                         r"\(byte\(s\) b'\\xe9' at offset 24.*encodings tried: "
                                         r"utf-8, utf-8-sig, utf-16.*save the file as UTF-8"):
        read_csv_rows(path)


@pytest.mark.parametrize("encoding, bom", [("utf-8", codecs.BOM_UTF8),
                                           ("utf-16-le", codecs.BOM_UTF16_LE),
                                           ("utf-16-be", codecs.BOM_UTF16_BE)])
def test_byte_order_marks_are_honoured(tmp_path, encoding, bom):
    path = write(tmp_path, "models.csv", bom + "model,family\nm0,réseau\n".encode(encoding))
    assert read_models(path)["family"].tolist() == ["réseau"]


def test_fields_longer_than_the_csv_default_limit_are_read(tmp_path):
    labels = ", ".join(f"class {i}" for i in range(20_000))  # ~ 200 kB, over csv's 128 KiB
    path = write(tmp_path, "datasets.csv", f'dataset,labels\nd0,"{labels}"\nd1,x\n')
    frame, lines = read_csv_rows(path)
    assert frame["labels"].iloc[0] == labels and lines.tolist() == [2, 3]


@pytest.mark.parametrize("sep, name", [(";", "';'"), ("\t", "tabs")])
def test_semicolon_or_tab_delimited_header_gets_a_hint(tmp_path, sep, name):
    path = write(tmp_path, "rec.csv", sep.join(["model", "dataset", "accuracy"])
                 + "\n" + sep.join(["m0", "d0", "0.5"]) + "\n")
    with pytest.raises(ValueError, match=rf"rec.csv, line 1: the header .* is one column holding "
                                         rf"{name}: the file seems to use {name} as delimiter.*"
                                         rf"save it with commas"):
        read_records(path, *IDS)


def test_spaces_around_header_names_get_a_hint(tmp_path):
    path = write(tmp_path, "rec.csv", "model, dataset, accuracy\nm0, d0, 0.5\n")
    with pytest.raises(ValueError, match=r"rec.csv, line 1: column name\(s\) \[' dataset', "
                                         r"' accuracy'\] have spaces around them"):
        read_records(path, *IDS)
