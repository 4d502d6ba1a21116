"""The predictor interface and the registry of predictors by name.

Every predictor keeps the scikit-learn contract: `__init__` stores hyper-parameters only,
`fit(zoo, train_pairs) -> self` does the work (only the accuracies of `train_pairs` may be read;
metadata and scores of any node/pair may be used), `predict(pairs, zoo=None) -> ndarray [P]`.
Predictors that use node features fit their featurizers on the nodes that appear in
`train_pairs` only (leakage rule 2 of design.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from tpred.config import TrainConfig
    from tpred.data.zoo import Zoo


@runtime_checkable
class Predictor(Protocol):
    """What `tpred.evaluation` and `tpred.train` call."""

    def fit(self, zoo: Zoo, train_pairs: pd.DataFrame) -> Predictor: ...

    def predict(self, pairs: pd.DataFrame, zoo: Zoo | None = None) -> np.ndarray:
        """Predictions [P]; `zoo` (default: the fitted one) supplies metadata and scores of
        nodes the fitted zoo lacks, so new models and datasets can be predicted."""
        ...


#: name -> factory(cfg) building an unfitted predictor from the run's config. Filled by
#: `tpred.models.__init__`; `score:<metric>` names are resolved by `make_predictor`.
PREDICTORS: dict[str, Callable[[TrainConfig], Predictor]] = {}


def register(name: str) -> Callable[[Callable[[TrainConfig], Predictor]],
                                    Callable[[TrainConfig], Predictor]]:
    """Decorator adding a factory to `PREDICTORS`."""
    def deco(factory: Callable[[TrainConfig], Predictor]) -> Callable[[TrainConfig], Predictor]:
        PREDICTORS[name] = factory
        return factory
    return deco


def make_predictor(name: str, cfg: TrainConfig, seed: int | None = None) -> Predictor:
    """An unfitted predictor by name; `score:<metric>` is the raw score `<metric>`.

    Args:
        name: a name of `PREDICTORS` or `score:<metric>`.
        cfg: the run's config (predictor settings).
        seed: given to a predictor with a `seed` hyper-parameter (the gnn); None keeps its
            default. Deterministic predictors have none.

    Raises:
        ValueError: the name is not registered (the message lists the valid ones).
    """
    if name.startswith("score:"):
        from tpred.models.score_only import ScorePredictor
        return ScorePredictor(metric=name.split(":", 1)[1])
    if name not in PREDICTORS:
        raise ValueError(f"Could not resolve predictor {name!r} among choices "
                         f"{sorted(PREDICTORS) + ['score', 'score:<metric>']}")
    predictor = PREDICTORS[name](cfg)
    if seed is not None and hasattr(predictor, "seed"):
        predictor.seed = seed
    return predictor


def is_seeded(name: str, cfg: TrainConfig) -> bool:
    """Whether predictor `name` takes a seed (so that seeds give different fits)."""
    return hasattr(make_predictor(name, cfg), "seed")
