"""Exceptions and warnings of tpred; each subclasses the builtin a caller already catches."""

from __future__ import annotations


class NotFittedError(ValueError, AttributeError):
    """A predictor or transformer was used before `fit` (as scikit-learn's NotFittedError)."""


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for a group (one element, a constant column): the value is NaN."""


class UntrustedFileError(ValueError):
    """A file would run code when read (a pickle) and the caller did not pass `trust=True`."""
