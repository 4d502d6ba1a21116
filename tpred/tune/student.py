"""Pre-trained networks as backbones: the classifier head found and removed, a new head added."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

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


def extract(backbone: nn.Module, x: torch.Tensor, feature_dim: int, *,
            name: str = "model") -> torch.Tensor:
    """Features of `x` by a frozen backbone (eval mode, no gradient), in batches.

    Shapes: x [N, ...] -> [N, feature_dim] float32.

    Raises:
        ValueError: the backbone's output is not [N, feature_dim], or not finite.
    """
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            out = torch.cat([backbone(x[i:i + EXTRACT_BATCH])
                             for i in range(0, len(x), EXTRACT_BATCH)]).float()
    finally:
        backbone.train(was_training)
    if out.shape != (len(x), feature_dim):
        raise ValueError(f"{name}: features must have shape ({len(x)}, {feature_dim}), got "
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

    Shapes: x [B, ...] -> (features [B, D], logits [B, C]).
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int,
                 generator: torch.Generator) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(feature_dim, num_classes)
        with torch.no_grad():
            self.head.weight.normal_(0.0, HEAD_INIT_STD, generator=generator)
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone(x)
        return features, self.head(features)

    def predict(self, x: torch.Tensor) -> np.ndarray:
        """Predicted class positions 0..C−1 [N] (eval mode, no gradient, in batches)."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                out = [self(x[i:i + EXTRACT_BATCH])[1].argmax(1)
                       for i in range(0, len(x), EXTRACT_BATCH)]
        finally:
            self.train(was_training)
        return torch.cat(out).numpy()
