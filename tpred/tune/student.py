"""Pre-trained networks as backbones: the classifier head found and removed, a new head added.

A network is a plain `nn.Module` whose head is a named `nn.Linear` (`split_head`), or a
`tpred.extract.LoadedModel` (any spec `tpred.extract.load_model` reads: its `forward` gives the
penultimate features, found by its own hooks). Inputs are a Tensor [N, ...] or a mapping of
tensors (tokenised text), indexed along the first dimension (`take`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

#: a model's inputs: a Tensor [N, ...] or a mapping of tensors [N, ...] (e.g. input_ids)
Batchable = torch.Tensor | Mapping[str, torch.Tensor]

#: attribute names under which classifier heads live (the digits zoo, torchvision, timm, ...);
#: the head is that attribute when it is an nn.Linear, or the last module of an nn.Sequential
HEAD_NAMES = ("head", "fc", "classifier", "last_linear")
#: std of the new head's initial weights (the reference's `c_net.weight.data.normal_(0, 0.01)`)
HEAD_INIT_STD = 0.01
#: images per forward pass when extracting features
EXTRACT_BATCH = 256


def split_head(model: nn.Module, *, name: str = "model") -> tuple[nn.Module, int]:
    """A copy of `model` whose classifier head is replaced by `nn.Identity`, and the feature dim.

    The copy's forward returns the penultimate features (what the head received), as the
    reference's `load_model` does for torchvision models. `model` itself is not modified.

    Args:
        model: a pre-trained network whose head is `.head`, `.fc`, `.classifier` or
            `.last_linear` (an nn.Linear, or an nn.Sequential ending in one), or a timm model
            (`reset_classifier`, `num_features`).
        name: the model's name, for messages.

    Returns:
        (backbone, D): backbone(x) is [B, D].

    Raises:
        ValueError: no such head.
    """
    backbone = copy.deepcopy(model)
    for attr in HEAD_NAMES:
        head = getattr(backbone, attr, None)
        if isinstance(head, nn.Linear):
            setattr(backbone, attr, nn.Identity())
            return backbone, head.in_features
        if isinstance(head, nn.Sequential) and len(head) and isinstance(head[-1], nn.Linear):
            dim = head[-1].in_features
            head[-1] = nn.Identity()
            return backbone, dim
    if callable(getattr(backbone, "reset_classifier", None)) \
            and isinstance(getattr(backbone, "num_features", None), int):
        backbone.reset_classifier(0)                    # timm: the model now returns features
        return backbone, backbone.num_features
    raise ValueError(f"{name}: no detectable classifier head ({type(model).__name__} has no "
                     f"nn.Linear at .{', .'.join(HEAD_NAMES)} nor a timm reset_classifier); "
                     f"B-Tuning needs the penultimate features")


def take(x: Batchable, idx: Any) -> Batchable:
    """Items `idx` (a slice, indices or a mask) of a Tensor or of every tensor of a mapping."""
    if isinstance(x, Mapping):
        return {k: v[idx] if isinstance(v, torch.Tensor) else v for k, v in x.items()}
    return x[idx]


def num_items(x: Batchable) -> int:
    """N, the first dimension of a Tensor or of a mapping's tensors."""
    if isinstance(x, Mapping):
        return len(next(v for v in x.values() if isinstance(v, torch.Tensor)))
    return len(x)


def is_loaded_model(model: Any) -> bool:
    """Whether `model` is a `tpred.extract.LoadedModel` (without importing tpred.extract)."""
    return hasattr(model, "collate") and hasattr(model, "transform") and \
        isinstance(getattr(model, "module", None), nn.Module) and not isinstance(model, nn.Module)


class LoadedBackbone(nn.Module):
    """A `tpred.extract.LoadedModel` as a trainable backbone: forward = its features.

    Its source head stays in the network (its output is not used, so it gets no gradient).

    Shapes: x (the model's own collated inputs) -> [B, D].
    """

    def __init__(self, loaded: Any) -> None:
        super().__init__()
        self.net = loaded.module          # registered: parameters, train/eval, state_dict
        self._loaded = loaded

    def forward(self, x: Batchable) -> torch.Tensor:
        return self._loaded.forward(x).features


def as_backbone(model: Any, example: Batchable, *, name: str = "model") -> tuple[nn.Module,
                                                                                   int]:
    """A copy of `model` that returns its penultimate features, and their dimension D.

    Args:
        model: an `nn.Module` (see `split_head`) or a `tpred.extract.LoadedModel`.
        example: a few inputs (a LoadedModel's D is read from one forward pass on them).

    Raises:
        ValueError: no detectable head (see `split_head`; a LoadedModel's own message).
    """
    if not is_loaded_model(model):
        return split_head(model, name=name)
    backbone = LoadedBackbone(copy.deepcopy(model))
    backbone.eval()
    with torch.no_grad():
        out = backbone(example)
    if out.ndim != 2:
        raise ValueError(f"{name}: features must be 2-D [B, D], got shape {tuple(out.shape)}")
    return backbone, int(out.shape[1])


def extract(backbone: nn.Module, x: Batchable, feature_dim: int, *,
            name: str = "model") -> torch.Tensor:
    """Features of `x` by a frozen backbone (eval mode, no gradient), in batches.

    Shapes: x [N, ...] -> [N, feature_dim] float32.

    Raises:
        ValueError: the backbone's output is not [N, feature_dim], or not finite.
    """
    n = num_items(x)
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            out = torch.cat([backbone(take(x, slice(i, i + EXTRACT_BATCH)))
                             for i in range(0, n, EXTRACT_BATCH)]).float()
    finally:
        backbone.train(was_training)
    if out.shape != (n, feature_dim):
        raise ValueError(f"{name}: features must have shape ({n}, {feature_dim}), got "
                         f"{tuple(out.shape)}")
    if not torch.isfinite(out).all():
        raise ValueError(f"{name}: features contain NaN or inf")
    return out


class Student(nn.Module):
    """A pre-trained backbone with a new linear head for the target's classes.

    Args:
        backbone: `split_head`'s copy (trained in full).
        feature_dim: D.
        num_classes: C.
        generator: draws the head's initial weights ~ N(0, 0.01²) (bias 0), as the reference.

    Shapes: x [B, ...] (Batchable) -> (features [B, D], logits [B, C]).
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int,
                 generator: torch.Generator) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(feature_dim, num_classes)
        with torch.no_grad():
            self.head.weight.normal_(0.0, HEAD_INIT_STD, generator=generator)
            self.head.bias.zero_()

    def forward(self, x: Batchable) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone(x)
        return features, self.head(features)

    def predict(self, x: Batchable) -> np.ndarray:
        """Predicted class positions 0..C−1 [N] (eval mode, no gradient, in batches)."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                out = [self(take(x, slice(i, i + EXTRACT_BATCH)))[1].argmax(1)
                       for i in range(0, num_items(x), EXTRACT_BATCH)]
        finally:
            self.train(was_training)
        return torch.cat(out).numpy()
