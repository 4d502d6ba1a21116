"""Exceptions and warnings of tpred; each subclasses the builtin a caller already catches."""

from __future__ import annotations


class NotFittedError(ValueError, AttributeError):
    """A predictor or transformer was used before `fit` (as scikit-learn's NotFittedError)."""


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for a group (one element, a constant column): the value is NaN."""


class SaturatedScoreWarning(UserWarning):
    """A score's value is fixed by the shapes of its inputs, not by their content (H-score with
    at least as many feature dimensions as samples is C − 1): it ranks nothing."""


class MissingScoresWarning(UserWarning):
    """New models or datasets are predicted without scores for some or all of their pairs, as a
    pair without scores is in training (the run was trained with scores)."""


class NoScoresWarning(MissingScoresWarning):
    """New nodes without a single score: predicted from metadata and records only."""


class PartialScoresWarning(MissingScoresWarning):
    """New nodes scored on only some of their pairs or metrics."""


class UntrustedFileError(ValueError):
    """A file would run code when read (a pickle) and the caller did not pass `trust=True`."""
