"""Predictors: one interface (`fit(zoo, train_pairs)`, `predict(pairs)`), a registry by name."""

from tpred.models import additive  # noqa: F401  (registers "additive")
from tpred.models.base import PREDICTORS, Predictor, make_predictor, register

for _name in ("lr", "mf", "knn", "score_only", "gnn"):
    try:  # modules are added one by one; each registers itself on import
        __import__(f"tpred.models.{_name}")
    except ModuleNotFoundError as _err:
        if _err.name != f"tpred.models.{_name}":
            raise

__all__ = ["PREDICTORS", "Predictor", "make_predictor", "register"]
