"""Small PyTorch networks of the digits zoo: MLPs, small CNNs and tiny residual CNNs.

Every network splits into `features(x)` (the penultimate layer, the frozen representation a
target head is fitted on) and `head` (the source classifier), and exposes `feature_dim`.
`as_loaded_model(net)` wraps one as a `tpred.extract.LoadedModel` (features = the input of
`net.head`), the form `tpred.extract`, `tpred.finetune` and the zoo builder run networks in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from tpred.extract.models import LoadedModel

IMAGE_SIZE = 8  # load_digits images are 8×8


class MLP(nn.Module):
    """Fully connected ReLU network on the flattened image.

    Args:
        widths: hidden widths, one per hidden layer; the last is the feature dimension.
        num_classes: source classes.

    Shapes: x [B, 1, 8, 8] -> features [B, widths[-1]] -> logits [B, num_classes].
    """

    family = "mlp"

    def __init__(self, widths: Sequence[int], num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        last = IMAGE_SIZE * IMAGE_SIZE
        for width in widths:
            layers += [nn.Linear(last, width), nn.ReLU()]
            last = width
        self.body = nn.Sequential(*layers)
        self.feature_dim = last
        self.head = nn.Linear(last, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class SmallCNN(nn.Module):
    """Two 3×3 conv layers, a 2×2 max-pool, and one fully connected feature layer.

    Args:
        channels: output channels of the two conv layers.
        hidden: width of the fully connected feature layer.
        num_classes: source classes.

    Shapes: x [B, 1, 8, 8] -> features [B, hidden] -> logits [B, num_classes].
    """

    family = "cnn"

    def __init__(self, channels: tuple[int, int], hidden: int, num_classes: int) -> None:
        super().__init__()
        c1, c2 = channels
        self.body = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),                                            # [B, c2, 4, 4]
            nn.Flatten(),
            nn.Linear(c2 * (IMAGE_SIZE // 2) ** 2, hidden), nn.ReLU(),
        )
        self.feature_dim = hidden
        self.head = nn.Linear(hidden, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class _Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(out)))


class TinyResNet(nn.Module):
    """A stem conv, `blocks` basic residual blocks at 8×8, and global average pooling.

    Args:
        channels: width of every layer (the feature dimension).
        blocks: residual blocks.
        num_classes: source classes.

    Shapes: x [B, 1, 8, 8] -> features [B, channels] -> logits [B, num_classes].
    """

    family = "resnet"

    def __init__(self, channels: int, blocks: int, num_classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(),
            *[_Block(channels) for _ in range(blocks)],
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),                       # [B, channels]
        )
        self.feature_dim = channels
        self.head = nn.Linear(channels, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def make_network(family: str, size: Sequence[int], num_classes: int) -> nn.Module:
    """Build a network by family name.

    Args:
        family: `mlp` (size = hidden widths), `cnn` (size = (c1, c2, hidden)) or `resnet`
            (size = (channels, blocks)).
        size: the family's shape parameters.
        num_classes: source classes.

    Raises:
        ValueError: unknown family or a size of the wrong length.
    """
    size = tuple(int(s) for s in size)
    if family == "mlp" and len(size) >= 1:
        return MLP(size, num_classes)
    if family == "cnn" and len(size) == 3:
        return SmallCNN((size[0], size[1]), size[2], num_classes)
    if family == "resnet" and len(size) == 2:
        return TinyResNet(size[0], size[1], num_classes)
    if family not in ("mlp", "cnn", "resnet"):
        raise ValueError(f"make_network: unknown family {family!r}; valid: ['cnn', 'mlp', "
                         f"'resnet']")
    raise ValueError(f"make_network: size {size} does not fit family {family!r} (mlp: widths, "
                     f"cnn: (c1, c2, hidden), resnet: (channels, blocks))")


def count_parameters(net: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def count_flops(net: nn.Module) -> int:
    """FLOPs of one forward pass on one 8×8 image (`torch.utils.flop_counter`; a multiply-add
    counts 2)."""
    was_training = net.training
    flops = as_loaded_model(net).count_flops(torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE))
    net.train(was_training)
    return flops


class DigitsTransform:
    """A PIL image -> Tensor [1, 8, 8] in [0, 1]: grayscale, resized to 8×8 (bilinear), the
    scale of `load_digits().images / 16`. Needs pillow only when called."""

    def __call__(self, image) -> torch.Tensor:
        from PIL import Image

        small = image.convert("L").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
        pixels = torch.frombuffer(bytearray(small.tobytes()), dtype=torch.uint8)
        return (pixels.float() / 255.0).reshape(1, IMAGE_SIZE, IMAGE_SIZE)

    def __repr__(self) -> str:
        return "convert('L') -> resize (8, 8) bilinear -> [0, 1]"


def as_loaded_model(net: nn.Module, name: str = "digits-network", *,
                    pretrained: bool | None = True) -> LoadedModel:
    """A zoo network as a `tpred.extract.LoadedModel`: `forward(x [B, 1, 8, 8])` gives
    `features` [B, feature_dim] (the input of `net.head`, i.e. `net.features(x)`) and the source
    head's logits [B, Cs]; PIL images are read with `DigitsTransform`.

    Args:
        net: a network of `make_network` (any module with a `head` submodule works).
        name: the model id (and the spec `digits:<name>`).
        pretrained: whether the weights are trained (for the metadata).
    """
    from tpred.extract.models import HookedModel, stack

    family = getattr(net, "family", type(net).__name__.lower())
    return HookedModel(net, head="head", spec=f"digits:{name}", library="tpred.zoo",
                       modality="image", transform=DigitsTransform(), collate=stack,
                       preprocessing=repr(DigitsTransform()), architecture=type(net).__name__,
                       architecture_family=family, pretrained=pretrained, name=name)
