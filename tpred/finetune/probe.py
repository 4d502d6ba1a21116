"""The `linear-probe` protocol: a logistic-regression head on frozen features, test accuracy.

The head of the digits zoo, generalised to any feature folder `tpred.extract` writes: features
standardised with the train part's mean and standard deviation (a feature that is constant on
the train part is only centred), `sklearn.linear_model.LogisticRegression(C=1, lbfgs)`, accuracy
on the test part.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from tqdm.auto import tqdm

from tpred.extract.run import read_pair
from tpred.finetune.records import RecordsWriter, done_pairs, format_settings, read_records_table

#: inverse regularisation strength of the head (on standardised features)
HEAD_C = 1.0
#: a feature whose train-part standard deviation is below this is left unscaled (a dead ReLU)
MIN_STD = 1e-8
PROTOCOL = "linear-probe"


def linear_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                 test_y: np.ndarray, *, C: float = HEAD_C, max_iter: int = 1000) -> float:
    """Test accuracy of a logistic-regression head fitted on standardised frozen features.

    Shapes: train_x [n, D], train_y [n], test_x [m, D], test_y [m]. Returns a float in [0, 1].

    Raises:
        ValueError: fewer than 2 classes in `train_y`, mismatched shapes, or an empty test part.
    """
    train_x, test_x = np.asarray(train_x), np.asarray(test_x)
    if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"linear_probe: features must be [n, D] and [m, D], got "
                         f"{train_x.shape} and {test_x.shape}")
    if len(np.unique(train_y)) < 2:
        raise ValueError(f"linear_probe: the train part needs at least 2 classes, got "
                         f"{np.unique(train_y).tolist()}")
    if len(test_x) == 0:
        raise ValueError("linear_probe: the test part is empty")
    mean = train_x.mean(axis=0)
    std = train_x.std(axis=0)
    std = np.where(std > MIN_STD, std, 1.0)
    head = LogisticRegression(C=C, max_iter=max_iter)
    head.fit((train_x - mean) / std, train_y)
    return float((head.predict((test_x - mean) / std) == test_y).mean())


def probe_file(path: str | Path, *, C: float = HEAD_C) -> tuple[float, int, int]:
    """(accuracy, train_size, test_size) of the linear probe on one `tpred.extract` file.

    Raises:
        ValueError: an unreadable file, or one without a test split (`test_features`).
    """
    arrays = read_pair(path)
    if missing := [k for k in ("features", "labels", "test_features", "test_labels")
                   if k not in arrays]:
        raise ValueError(f"{path}: no {'test split' if 'test_features' in missing else 'data'} "
                         f"(missing {missing}); the linear probe measures accuracy on the test "
                         "split tpred.extract writes when the data has one (train/ and test/ "
                         "folders, a split column, a test split in datasets)")
    accuracy = linear_probe(arrays["features"], arrays["labels"], arrays["test_features"],
                            arrays["test_labels"], C=C)
    return accuracy, len(arrays["labels"]), len(arrays["test_labels"])


def probe_directory(features_dir: str | Path, out_csv: str | Path, *, C: float = HEAD_C,
                    overwrite: bool = False, progress: bool = True) -> dict[str, int]:
    """Linear-probe records of every `features_dir/<model>/<dataset>.npz` into `out_csv`.

    Pairs already recorded under `linear-probe` are skipped (resume) unless `overwrite`; rows
    are appended as pairs finish; a pair that cannot be probed is a row of the errors file with
    the reason, and the rest goes on.

    Returns:
        Counts: `pairs`, `skipped`, `done`, `failed`.

    Raises:
        ValueError: `features_dir` missing or without .npz files; `out_csv` not a records file.
    """
    features_dir = Path(features_dir)
    files = sorted(features_dir.glob("*/*.npz")) if features_dir.is_dir() else []
    if not files:
        raise ValueError(f"features directory {str(features_dir)!r} holds no "
                         "<model>/<dataset>.npz file (python -m tpred.extract writes them)")
    done = set() if overwrite else done_pairs(read_records_table(out_csv), PROTOCOL)
    counts = {"pairs": len(files), "skipped": 0, "done": 0, "failed": 0}
    settings = format_settings([("C", C)])
    with RecordsWriter(out_csv, PROTOCOL, replace=overwrite) as writer:
        for path in tqdm(files, unit="pair", desc="linear probe", disable=not progress):
            model, dataset = path.parent.name, path.stem
            if (model, dataset) in done:
                counts["skipped"] += 1
                continue
            start = time.perf_counter()
            try:
                accuracy, n_train, n_test = probe_file(path, C=C)
            except ValueError as err:
                writer.add(model, dataset, None,
                           [(model, dataset, PROTOCOL, "", f"ValueError: {err}")])
                counts["failed"] += 1
                continue
            row = (model, dataset, round(accuracy, 6), PROTOCOL, n_train, n_test,
                   round(time.perf_counter() - start, 3), settings)
            writer.add(model, dataset, row, [])
            counts["done"] += 1
    return counts
