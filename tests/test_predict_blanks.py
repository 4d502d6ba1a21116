"""New rows with blank cells, repeated or odd records: `Run.predict` and `python -m tpred.predict`
say what they imputed, and refuse what the run cannot take."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from tpred.api import Run
from tpred.checkpoint import fit_all, save_checkpoint
from tpred.config import GNNConfig, ProtocolConfig, TextConfig, TrainConfig, ZooConfig
from tpred.data.zoo import Zoo
from tpred.errors import NoScoresWarning
from tpred.predict import main as predict_main
from tpred.testing import TOY_DATASET_FEATURES, TOY_MODEL_FEATURES, toy_zoo

FAST = GNNConfig(hidden_channels=16, heads=2, max_epochs=20, patience=5, num_threads=1,
                 cv_max_records=0)


def _config(**kw) -> TrainConfig:
    base = TrainConfig(model_features=TOY_MODEL_FEATURES, dataset_features=TOY_DATASET_FEATURES,
                       text=TextConfig(encoder="hash", cache_dir=None),
                       methods=("lr", "knn", "gnn"), protocols=("cold-dataset",), seeds=(0,),
                       gnn=FAST, protocol=ProtocolConfig(num_folds=3))
    return replace(base, **kw)


@pytest.fixture(scope="module")
def zoo() -> Zoo:
    return toy_zoo(num_models=5, num_datasets=10, seed=2)


@pytest.fixture(scope="module")
def run(zoo) -> Run:
    cfg = _config()
    return Run(cfg, zoo, fit_all(zoo, cfg, ["lr", "knn", "gnn"], progress=False))


@pytest.fixture
def new_datasets(zoo) -> pd.DataFrame:
    """Two new datasets (copies of d0, d1 under new ids) with blank cells of every kind."""
    rows = zoo.datasets.iloc[:2].reset_index().astype(object)
    rows["dataset"] = ["n0", "n1"]
    rows.loc[0, "num_classes"] = np.nan
    rows.loc[1, "train_size"] = "NA"
    rows.loc[1, "domain"] = None
    rows.loc[0, "labels"] = ""
    return rows


def test_blank_cells_of_new_rows_are_imputed_with_a_warning_counting_them(run, new_datasets):
    with pytest.warns(UserWarning, match=r"datasets DataFrame: 4 blank cell\(s\) imputed: "
                                         r"num_classes 1, train_size 1, domain 1, labels 1 "
                                         r"\(numbers: the median of the run's training "
                                         r"datasets"):
        out = run.predict(datasets=new_datasets, method="gnn")
    assert len(out) == 2 * 5 and np.isfinite(out["predicted"]).all()
    for method in ("lr", "knn"):
        with pytest.warns(UserWarning) as caught:
            out = run.predict(datasets=new_datasets, method=method)
        assert np.isfinite(out["predicted"]).all()
        said = [str(w.message) for w in caught]
        assert len(said) == 3
        assert sum("4 blank cell(s) imputed" in m for m in said) == 1
        assert sum("2 new dataset(s) ['n0', 'n1'] have no scores" in str(w.message)
                   and w.category is NoScoresWarning for w in caught) == 1
        assert sum(m.endswith("column 'domain': blank cell(s), and the training datasets "
                              "have none, so the 'missing' category has no one-hot column; "
                              "their one-hot features are zeros (as for an unseen category)")
                   for m in said) == 1
        assert not any("unseen in training" in m for m in said)


def test_a_blank_and_an_unseen_category_are_warned_of_apart(run, new_datasets):
    new_datasets.loc[0, "domain"] = "x-ray"
    with pytest.warns(UserWarning) as caught:
        run.predict(datasets=new_datasets, method="lr")
    said = [str(w.message) for w in caught]
    assert sum(m.endswith("column 'domain': category ['x-ray'] unseen in training; their "
                          "one-hot features are zeros") for m in said) == 1
    assert sum("column 'domain': blank cell(s), and the training datasets have none" in m
               for m in said) == 1


def test_a_blank_number_becomes_the_median_of_the_training_nodes(run, zoo, new_datasets):
    featurizer = run.ensembles["lr"][0].dataset_inputs_.featurizer_
    median = float(np.median(zoo.datasets["num_classes"]))
    filled = new_datasets.iloc[:1].set_index("dataset").assign(num_classes=median)
    blank = new_datasets.iloc[:1].set_index("dataset")
    names = featurizer.get_feature_names_out().tolist()
    x_blank, x_filled = featurizer.transform(blank)[0], featurizer.transform(filled)[0]
    # the run's zoo is complete: no indicator was fitted, so the two rows are the same
    assert not [n for n in names if n.startswith("missing__")]
    np.testing.assert_array_equal(x_blank, x_filled)


def test_cli_prints_the_imputation_once(run, new_datasets, tmp_path, capsys):
    save_checkpoint(tmp_path / "checkpoint", run.config, run.zoo, run.ensembles)
    path = tmp_path / "new.csv"
    new_datasets.to_csv(path, index=False)
    assert predict_main(["--run", str(tmp_path), "--datasets", str(path), "--method", "lr",
                         "--out", str(tmp_path / "p.csv"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.count("blank cell(s) imputed") == 1
    assert (f"python -m tpred.predict: warning: {path}: 4 blank cell(s) imputed: num_classes 1, "
            f"train_size 1, domain 1, labels 1") in err
    assert np.isfinite(pd.read_csv(tmp_path / "p.csv")["predicted"]).all()


def test_a_run_trained_with_impute_error_refuses_blank_rows(zoo, new_datasets):
    strict = replace(TOY_DATASET_FEATURES, impute="error")
    cfg = _config(dataset_features=strict)
    run = Run(cfg, zoo, fit_all(zoo, cfg, ["lr"], progress=False))
    with pytest.raises(ValueError, match=r"datasets DataFrame, line 2, column 'num_classes': "
                                         r"blank value '' and dataset_features.impute is 'error' "
                                         r".*the run was trained with dataset_features.impute: "
                                         r"error, so new datasets must be complete"):
        run.predict(datasets=new_datasets)


def test_repeated_new_records_follow_the_runs_duplicates_setting(run, zoo):
    records = pd.DataFrame({"model": ["m0", "m0", "m1"], "dataset": ["n0", "n0", "n0"],
                            "accuracy": [0.5, 0.7, 0.6]})
    datasets = zoo.datasets.iloc[:1].reset_index().assign(dataset="n0")
    with pytest.raises(ValueError, match=r"records DataFrame, line 3, columns \['model', "
                                         r"'dataset'\]: duplicate \['m0', 'n0'\] \(first on line "
                                         r"2; 1 duplicate row\(s\)\); give one record per pair"):
        run.extend(datasets=datasets, records=records)
    mean_run = Run(replace(run.config, data=ZooConfig(duplicates="mean")), run.zoo,
                   run.ensembles)
    ext = mean_run.extend(datasets=datasets, records=records)
    assert ext.new_records.values.tolist() == [["m0", "n0", pytest.approx(0.6)],
                                               ["m1", "n0", 0.6]]


def test_percent_messages_of_predict_name_no_train_option(run, zoo):
    datasets = zoo.datasets.iloc[:1].reset_index().assign(dataset="n0")
    records = pd.DataFrame({"model": ["m0"], "dataset": ["n0"], "accuracy": [55.0]})
    with pytest.raises(ValueError, match=r"records DataFrame, line 2, column 'accuracy'.*got "
                                         r"'55.0'.*the run reads fractions \(its data.percent is "
                                         r"false\)$"):
        run.extend(datasets=datasets, records=records)
