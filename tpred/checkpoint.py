"""Checkpoints of a run: every method fitted on all known records, with its featurizers.

A checkpoint is one pickle (joblib) of a dict:
  {"format": 1, "tpred_version": str, "config": TrainConfig.to_dict(), "zoo": Zoo,
   "predictors": {method: fitted predictor}}
Predictors are plain picklable objects (the gnn keeps its torch module's state and its fitted
featurizers; text encoders drop their weights when pickled and reload them lazily).
"""

from __future__ import annotations

from pathlib import Path

import joblib
import pandas as pd
from tqdm.auto import tqdm

import tpred
from tpred.config import TrainConfig
from tpred.data.zoo import Zoo
from tpred.models import Predictor

FORMAT = 1
CHECKPOINT_NAME = "checkpoint.pkl"


def fit_all(zoo: Zoo, cfg: TrainConfig, methods: list[str], *, seed: int = 0,
            progress: bool = True) -> dict[str, Predictor]:
    """Every method fitted on all known records of `zoo` (the models a user predicts with)."""
    from tpred.evaluation.run import build_predictor

    pairs = zoo.known_pairs()
    fitted = {}
    for method in tqdm(methods, desc="fit on all records", disable=not progress):
        fitted[method] = build_predictor(method, cfg, seed).fit(zoo, pairs)
    return fitted


def save_checkpoint(path: Path, cfg: TrainConfig, zoo: Zoo,
                    predictors: dict[str, Predictor]) -> Path:
    payload = {"format": FORMAT, "tpred_version": tpred.__version__, "config": cfg.to_dict(),
               "zoo": zoo, "predictors": predictors}
    joblib.dump(payload, path)
    return path


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint; `config` comes back as a TrainConfig.

    Raises:
        ValueError: the file is missing or not a tpred checkpoint of a known format.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise ValueError(f"{path}: no checkpoint here (a run folder holds {CHECKPOINT_NAME})")
    payload = joblib.load(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a tpred checkpoint of format {FORMAT}")
    payload["config"] = TrainConfig.from_dict(payload["config"], where=str(path))
    return payload


def predict_frame(predictors: dict[str, Predictor], pairs: pd.DataFrame) -> pd.DataFrame:
    """Predictions of every predictor for `pairs`, one column per method."""
    out = pairs[["model", "dataset"]].copy()
    for name, predictor in predictors.items():
        out[name] = predictor.predict(pairs)
    return out
