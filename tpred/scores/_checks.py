"""Validators shared by every score: one place that checks inputs and re-encodes labels."""

from __future__ import annotations

import numpy as np


def check_features_labels(features, labels, *, name: str, min_per_class: int = 2):
    """Validate score inputs.

    Args:
        features: array-like [N, D], any float dtype (never mutated; a float64 copy is returned).
        labels: array-like [N], any hashable values; re-encoded to 0..C-1 in sorted order.
        name: the calling metric, for messages.
        min_per_class: fewest samples a class may have.

    Returns:
        (features float64 [N, D], labels int64 [N] in 0..C-1, C)

    Raises:
        ValueError: not 2-D, empty, length mismatch, NaN/inf, fewer than 2 classes, or a class
            with fewer than `min_per_class` samples.
    """
    features = np.array(features, dtype=np.float64, copy=True)
    labels = np.asarray(labels)
    if features.ndim != 2:
        raise ValueError(f"{name}: features must be 2-D [N, D], got shape {features.shape}")
    if features.shape[0] == 0 or features.shape[1] == 0:
        raise ValueError(f"{name}: features must be non-empty, got shape {features.shape}")
    if labels.shape != (len(features),):
        raise ValueError(f"{name}: labels must have shape ({len(features)},), got {labels.shape}")
    if not np.isfinite(features).all():
        bad = int((~np.isfinite(features)).any(axis=1).sum())
        raise ValueError(f"{name}: features contain NaN or inf ({bad} row(s))")
    classes, y, counts = np.unique(labels, return_inverse=True, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"{name}: needs at least 2 classes, got {len(classes)}")
    if (small := counts < min_per_class).any():
        raise ValueError(f"{name}: every class needs at least {min_per_class} samples; class "
                         f"{classes[small][0]!r} has {counts[small][0]}")
    return features, y.astype(np.int64).ravel(), len(classes)
