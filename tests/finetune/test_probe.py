"""The linear-probe protocol: closed cases, feature folders to records, resume, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tpred.extract import write_pair
from tpred.finetune import linear_probe, probe_directory, probe_file, read_records_table
from tpred.finetune.__main__ import main
from tpred.zoo.build import fit_head


def _separable(seed: int = 0):
    """Two classes split by feature 0; feature 1 is a dead (constant) unit."""
    rng = np.random.default_rng(seed)
    y = (np.arange(40) // 2) % 2                          # 0 0 1 1 ...: both classes in x[::2]
    x = np.column_stack([np.where(y == 1, 3.0, -3.0) + rng.normal(0, 0.3, 40), np.ones(40)])
    return x, y


def test_linear_probe_closed_cases():
    x, y = _separable()
    assert linear_probe(x[::2], y[::2], x[1::2], y[1::2]) == 1.0
    assert linear_probe(x[::2], y[::2], x[1::2], 1 - y[1::2]) == 0.0  # every test label flipped
    assert fit_head is linear_probe  # the digits zoo's head is this probe
    with pytest.raises(ValueError, match=r"at least 2 classes, got \[0\]"):
        linear_probe(x[y == 0], y[y == 0], x, y)
    with pytest.raises(ValueError, match=r"features must be \[n, D\] and \[m, D\]"):
        linear_probe(x, y, x[:, :1], y)
    with pytest.raises(ValueError, match="the test part is empty"):
        linear_probe(x, y, x[:0], y[:0])


@pytest.fixture
def features(tmp_path):
    """m1/d1, m2/d1 with a test split; m1/d2 without one."""
    x, y = _separable()
    write_pair(tmp_path / "f" / "m1" / "d1.npz", {"features": x[::2], "labels": y[::2],
                                                  "test_features": x[1::2],
                                                  "test_labels": y[1::2]})
    noisy = np.random.default_rng(1).normal(size=x.shape)
    write_pair(tmp_path / "f" / "m2" / "d1.npz", {"features": noisy[::2], "labels": y[::2],
                                                  "test_features": noisy[1::2],
                                                  "test_labels": y[1::2]})
    write_pair(tmp_path / "f" / "m1" / "d2.npz", {"features": x, "labels": y})
    return tmp_path / "f"


def test_probe_directory_records_resumes_and_reports(features, tmp_path):
    out = tmp_path / "records.csv"
    counts = probe_directory(features, out, progress=False)
    assert counts == {"pairs": 3, "skipped": 0, "done": 2, "failed": 1}
    records = pd.read_csv(out)
    assert records.columns.tolist() == ["model", "dataset", "accuracy", "protocol",
                                        "train_size", "test_size", "seconds", "settings"]
    assert records[["model", "dataset", "protocol", "train_size", "test_size", "settings"]
                   ].values.tolist() == [["m1", "d1", "linear-probe", 20, 20, "C=1.0"],
                                         ["m2", "d1", "linear-probe", 20, 20, "C=1.0"]]
    assert records["accuracy"][0] == 1.0 and records["accuracy"][1] < 0.9
    errors = pd.read_csv(tmp_path / "records.errors.csv", keep_default_na=False)
    assert errors[["model", "dataset", "protocol"]].values.tolist() == [
        ["m1", "d2", "linear-probe"]]
    assert "no test split" in errors["reason"][0]
    again = probe_directory(features, out, progress=False)
    assert again == {"pairs": 3, "skipped": 2, "done": 0, "failed": 1}
    assert len(pd.read_csv(out)) == 2
    redo = probe_directory(features, out, overwrite=True, C=0.5, progress=False)
    assert redo["done"] == 2 and set(pd.read_csv(out)["settings"]) == {"C=0.5"}


def test_records_tables_and_folders_are_checked(features, tmp_path):
    with pytest.raises(ValueError, match="holds no <model>/<dataset>.npz"):
        probe_directory(tmp_path / "nothing", tmp_path / "r.csv")
    with pytest.raises(ValueError, match="no test split"):
        probe_file(features / "m1" / "d2.npz")
    bad = tmp_path / "bad.csv"
    bad.write_text("model,dataset,accuracy\nm1,d1,0.5\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['protocol'"):
        read_records_table(bad)
    row = "m1,d1,{},linear-probe,1,1,0.1,C=1.0\n"
    header = "model,dataset,accuracy,protocol,train_size,test_size,seconds,settings\n"
    bad.write_text(header + row.format("1.5"))
    with pytest.raises(ValueError, match=r"bad.csv, line 2, column 'accuracy': must be a number "
                                         r"in \[0, 1\], got '1.5'"):
        read_records_table(bad)
    bad.write_text(header + row.format("0.5") + row.format("0.6"))
    with pytest.raises(ValueError, match=r"line 3: repeated model/dataset/protocol"):
        read_records_table(bad)


def test_cli_linear_probe(features, tmp_path, capsys):
    assert main(["--features", str(features), "--out", str(tmp_path / "r.csv"),
                 "--no-progress"]) == 1  # one pair has no test split
    assert "2 done, 1 failed" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "r.csv")])
    assert "needs --features DIR" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--features", str(features), "--models", "timm:x", "--out", str(tmp_path / "r")])
    assert "--models/--data are for --protocol finetune" in capsys.readouterr().err
