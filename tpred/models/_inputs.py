"""Inputs shared by the feature-based baselines (`lr`, `knn`): node features and scores by pair.

Everything here reads metadata and scores only, never accuracies: scores need no fine-tuning, so
they are inputs for every pair, test pairs included (design.md, data contract).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tpred.config import NodeFeatureConfig, TextConfig
from tpred.data.ids import check_known_ids

if TYPE_CHECKING:
    from tpred.config import TrainConfig
    from tpred.data.zoo import Zoo

#: the default node features of a predictor: none (a frozen config, safe as a default argument)
NO_FEATURES = NodeFeatureConfig()


def encoder_for(cfg: TrainConfig):
    """The text encoder `cfg` asks for, or None when no text column is configured.

    One encoder per `TextConfig` is kept (loading BERT-family weights per fold would dominate the
    run time of the baselines).
    """
    if not (cfg.model_features.text or cfg.dataset_features.text):
        return None
    return _load_encoder(cfg.text)


@lru_cache(maxsize=2)
def _load_encoder(text: TextConfig):
    from tpred.text import load_encoder

    return load_encoder(text)


def check_ids_in_zoo(pairs: pd.DataFrame, zoo: Zoo, caller: str) -> None:
    """Raise ValueError naming the first id of `pairs` that `zoo` does not describe."""
    check_known_ids(pairs, {"model": zoo.model_ids, "dataset": zoo.dataset_ids}, caller,
                    problem="is not in the zoo's {kind}s table",
                    hint="; pass predict(pairs, zoo=...) with a zoo that describes it")


class NodeFeatures:
    """Node features of one node type by id: a `NodeFeaturizer` fitted on training nodes only.

    An empty config gives zero columns without building a featurizer.

    Shapes: `transform` returns float64 [len(ids), F] (F may be 0).
    """

    def __init__(self, config: NodeFeatureConfig, encoder=None) -> None:
        self.config = config
        self.encoder = encoder

    def fit(self, metadata: pd.DataFrame, ids: Sequence[str]) -> NodeFeatures:
        self.featurizer_ = None
        if self.config.columns:
            from tpred.features import NodeFeaturizer

            self.featurizer_ = NodeFeaturizer(self.config, encoder=self.encoder)
            self.featurizer_.fit(metadata.loc[list(ids)])
        return self

    def transform(self, metadata: pd.DataFrame, ids: Sequence[str]) -> np.ndarray:
        if self.featurizer_ is None:
            return np.zeros((len(ids), 0))
        return np.asarray(self.featurizer_.transform(metadata.loc[list(ids)]),
                          dtype=np.float64)                               # [n, F]


def resolve_metrics(zoo: Zoo, metrics: Sequence[str] | None, caller: str) -> list[str]:
    """`metrics`, or every metric of the zoo when None; an unknown name raises ValueError."""
    if metrics is None:
        return zoo.score_metrics
    if unknown := sorted(set(metrics) - set(zoo.score_metrics)):
        raise ValueError(f"{caller}: unknown score metric(s) {unknown}; the zoo's scores table "
                         f"has {zoo.score_metrics}")
    return list(metrics)


def dataset_zscores(zoo: Zoo, pairs: pd.DataFrame, metrics: Sequence[str]) -> np.ndarray:
    """Each pair's scores, z-scored per metric over the models of its dataset in `zoo`.

    A score ranks models for one dataset; its level and spread differ between datasets (LogME of a
    2-class and a 32-class task are not comparable), so each (dataset, metric) group of the zoo's
    scores table is standardised on its own. A constant group gives 0. A metric the zoo lacks is
    missing for every pair.

    Shapes: pairs [P] -> [P, S] float64, NaN where a pair lacks a score (S = len(metrics)).
    """
    from tpred.graph import standardize_scores  # the one implementation (graph edges use it)

    return standardize_scores(zoo, pairs, metrics)
