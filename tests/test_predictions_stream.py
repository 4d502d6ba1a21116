"""Predictions stream to a file per (method, protocol, seed) (tpred/evaluation/sink.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from tpred.config import TrainConfig
from tpred.evaluation.run import evaluate
from tpred.evaluation.sink import PREDICTION_COLUMNS, PredictionsWriter
from tpred.testing import TOY_DATASET_FEATURES, TOY_MODEL_FEATURES, toy_zoo


def tiny() -> tuple:
    zoo = toy_zoo(num_models=5, num_datasets=10, seed=4)
    cfg = TrainConfig(methods=("additive", "score"), protocols=("cold-dataset", "random"),
                      seeds=(0, 1), model_features=TOY_MODEL_FEATURES,
                      dataset_features=TOY_DATASET_FEATURES)
    return zoo, cfg.override("protocol.num_folds=3")


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_streamed_predictions_equal_the_in_memory_ones(tmp_path, suffix):
    if suffix == "parquet":
        pytest.importorskip("pyarrow")
    zoo, cfg = tiny()
    held = evaluate(zoo, cfg, progress=False)
    path = tmp_path / f"predictions.{suffix}"
    with PredictionsWriter(path) as sink:
        streamed = evaluate(zoo, cfg, progress=False, sink=sink, keep_predictions=False)
    assert streamed.predictions.empty and list(streamed.predictions) == PREDICTION_COLUMNS
    assert streamed.predictions_path == path and sink.rows == len(held.predictions)
    back = pd.read_csv(path) if suffix == "csv" else pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, held.predictions.reset_index(drop=True),
                                  check_dtype=False, check_exact=suffix == "parquet",
                                  rtol=1e-12)
    pd.testing.assert_frame_equal(streamed.results, held.results)


def test_a_writer_with_nothing_written_leaves_the_header(tmp_path):
    PredictionsWriter(tmp_path / "p.csv").close()
    assert (tmp_path / "p.csv").read_text().strip() == ",".join(PREDICTION_COLUMNS)
