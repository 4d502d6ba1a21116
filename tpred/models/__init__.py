"""Predictors: one interface (`fit(zoo, train_pairs)`, `predict(pairs)`), a registry by name."""

# each module registers its predictor(s) in PREDICTORS on import
from tpred.models import additive, gnn, knn, lr, mf, score_only, zmean  # noqa: F401
from tpred.models.base import PREDICTORS, Predictor, is_seeded, make_predictor, register

__all__ = ["PREDICTORS", "Predictor", "is_seeded", "make_predictor", "register"]
