"""Scores that mean nothing are kept but flagged: a note row in the errors table, one warning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tpred.errors import SaturatedScoreWarning
from tpred.scores.table import ERROR_COLUMNS, errors_path, score_arrays, score_directory


def _pair(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    return rng.normal(size=(n, d)) + y[:, None], y


PAIRS = {("wide", "small"): _pair(10, 20, 0),    # D >= N: H-score saturates at C - 1 = 2
         ("narrow", "small"): _pair(10, 4, 1),   # D < N - 1: a real value
         ("wide", "large"): _pair(40, 20, 2)}    # D < N - 1


def test_saturated_hscore_is_kept_with_a_note_and_one_warning():
    with pytest.warns(SaturatedScoreWarning, match=r"1 hscore value\(s\) are flagged as "
                                                   r"meaningless \(hscore saturated: .* use "
                                                   r"hscore_shrinkage") as caught:
        scores, errors = score_arrays(PAIRS, ["hscore", "hscore_shrinkage"])
    assert len([w for w in caught if issubclass(w.category, SaturatedScoreWarning)]) == 1
    assert list(errors.columns) == ERROR_COLUMNS
    assert errors[["model", "dataset", "metric", "kind"]].values.tolist() == [
        ["wide", "small", "hscore", "note"]]
    assert "rank 9 >= N - 1 = 9" in errors["reason"].iloc[0]
    value = scores.set_index(["model", "dataset", "metric"])["value"]
    assert value[("wide", "small", "hscore")] == pytest.approx(2.0)   # kept: it is the value
    assert value[("narrow", "small", "hscore")] < 2.0 - 1e-3
    summary = scores.attrs["summary"]
    assert (summary.num_errors, summary.num_notes) == (0, 1)


def test_score_directory_writes_notes_beside_errors(tmp_path):
    root = tmp_path / "features"
    for (model, dataset), (f, y) in PAIRS.items():
        (root / model).mkdir(parents=True, exist_ok=True)
        np.savez(root / model / f"{dataset}.npz", features=f, labels=y)
    out = tmp_path / "scores.csv"
    with pytest.warns(SaturatedScoreWarning, match=rf"listed \(kind 'note'\) in .*"
                                                   rf"{errors_path(out).name}"):
        score_directory(root, out, ["hscore", "leep"], progress=False)
    with pytest.warns(UserWarning, match="could not be scored"):
        pass_through = score_directory(root, tmp_path / "again.csv", ["leep"], progress=False)
    assert pass_through.empty
    errors = pd.read_csv(errors_path(out), keep_default_na=False)
    assert list(errors.columns) == ERROR_COLUMNS
    kinds = errors.groupby(["metric", "kind"]).size().to_dict()
    assert kinds == {("hscore", "note"): 1, ("leep", "error"): 3}  # leep needs `probs`
    assert "hscore saturated" in errors.query("kind == 'note'")["reason"].item()
