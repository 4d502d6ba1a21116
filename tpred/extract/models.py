"""Models by spec: `hf:`, `timm:`, `torchvision:`, `torch:` (and any prefix registered later).

`load_model(spec)` returns a `LoadedModel`: the network (a `torch.nn.Module`), its own
preprocessing (`transform` of one raw item, `collate` of a list of transformed items), and
`forward(batch) -> Forward(features [B, D], logits [B, Cs] or None)`: the penultimate features
(the input of the classifier head, or the pooled sentence vector of a text encoder) and the
source head's logits, in one differentiable pass (call it under `torch.no_grad()` to extract,
with gradients to fine-tune).

How the features are found, per family:

* a module with a classifier head (timm, torchvision, `torch:` files, transformers
  `*ForImageClassification`/`*ForSequenceClassification`): the head is the module with weights
  whose output *is* the model's output (logits), found by running the first batch with a hook on
  every such module (timm names it: `pretrained_cfg["classifier"]`); the features are its
  input, captured by a forward pre-hook. `layer="NAME"` takes the output of module NAME instead.
* transformers encoders without a head (`AutoModel`): the sentence-transformers pooling config
  (`1_Pooling/config.json`: mean, CLS or max over the attention mask; L2-normalised when
  `modules.json` lists `Normalize`), else the model's `pooler_output` for image models, else mean
  pooling over the attention mask (text) or tokens (images).
* TorchScript files: hooks are not supported on ScriptModules, so the forward graph is copied
  with the input of its final `aten::linear` added as a second output (see `_script_features`).

Safety: `torch:` files load as TorchScript or with `torch.load(weights_only=True)`; a pickled
`nn.Module` or a `torch.export` archive (`.pt2`; `torch.export.load` unpickles parts of it),
whose loading can run any code, needs `trust=True` (`--trust`). Hugging Face
`trust_remote_code` is False unless `trust=True`.

Extending: `register_loader("digits", fn)` makes `load_model("digits:<ref>")` call
`fn("<ref>", LoadOptions(...))`, which returns a `LoadedModel` (e.g. `HookedModel(module,
head="head", ...)` for a network whose classifier is `module.head`).
"""

from __future__ import annotations

import json
import math
import pickle
import re
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from tpred.extract._deps import require

__all__ = ["LOADERS", "Forward", "HookedModel", "ImageTransform", "LoadOptions", "LoadedModel",
           "PooledModel", "ScriptModel", "default_name", "load_model", "parse_spec",
           "register_loader", "resolve_device", "stack"]

Modality = Literal["image", "text"]
#: ImageNet statistics: the default normalisation of a `torch:` file without its own config
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: longest tokenised text when neither the model nor its tokenizer sets a usable limit
MAX_TEXT_TOKENS = 512


@dataclass(frozen=True)
class LoadOptions:
    """What a loader is asked for (one object, so that new options never break a loader).

    Args:
        pretrained: load the trained weights (False: the architecture with random weights,
            initialised from `seed`).
        layer: name of the module whose output is the feature vector (default: the head's input).
        trust: allow code from the model's files to run (pickled `nn.Module`, Hugging Face
            `trust_remote_code`).
        image_size: resize and centre-crop images to this size instead of the model's own size
            (faster dry runs; timm, torchvision and `torch:` files).
        seed: seed of the random initialisation when `pretrained` is False.
    """

    pretrained: bool = True
    layer: str | None = None
    trust: bool = False
    image_size: int | None = None
    seed: int = 0

    def columns(self) -> dict[str, Any]:
        """The `load_*` cells of the model's models.csv row: what re-creates the same network
        (`trust` is never recorded: it is the user's decision each time). Blank = default."""
        return {"load_pretrained": self.pretrained, "load_layer": self.layer or "",
                "load_image_size": "" if self.image_size is None else self.image_size,
                "load_seed": self.seed}

    @classmethod
    def from_row(cls, row: Mapping[str, Any], *, where: str = "models.csv") -> LoadOptions:
        """The options recorded in a models.csv row (`columns`); a row without `load_*` cells
        (a table made by hand or by an older tpred) gives the defaults, except that
        `pretrained` False in the row means random weights.

        Raises:
            ValueError: a cell that is not a boolean / integer, named with `where`.
        """

        def cell(column: str) -> Any:
            value = row.get(column)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                return None
            return value.strip() or None if isinstance(value, str) else value

        def flag(column: str) -> bool | None:
            if (value := cell(column)) is None:
                return None
            text = str(value).lower()  # a bool, numpy's bool_ or the CSV's text alike
            if text in ("true", "1", "yes", "false", "0", "no"):
                return text in ("true", "1", "yes")
            raise ValueError(f"{where}: column {column!r} must be true or false, got {value!r}")

        def integer(column: str, lowest: int) -> int | None:
            if (value := cell(column)) is None:
                return None
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = float("nan")
            if not number.is_integer() or number < lowest:
                raise ValueError(f"{where}: column {column!r} must be a whole number"
                                 f"{f' >= {lowest}' if lowest else ''}, got {value!r}")
            return int(number)

        pretrained = flag("load_pretrained")
        if pretrained is None:
            pretrained = flag("pretrained") is not False
        layer = cell("load_layer")
        return cls(pretrained=pretrained, layer=None if layer is None else str(layer),
                   image_size=integer("load_image_size", 1),
                   seed=integer("load_seed", 0) or 0)


@dataclass
class Forward:
    """One forward pass: `features` [B, D] (float) and the source head's `logits` [B, Cs] or
    None when the model has no classifier head."""

    features: torch.Tensor
    logits: torch.Tensor | None


class LoadedModel:
    """A network ready for feature extraction and fine-tuning.

    Subclasses implement `_forward(batch) -> Forward`. Everything else is shared.

    Args:
        module: the network (any `nn.Module`, a ScriptModule included).
        spec: the spec it was loaded from (e.g. `timm:resnet18`).
        library: `transformers`, `timm`, `torchvision`, `torch`, or a registered loader's name.
        modality: `image` (items are PIL images) or `text` (items are strings).
        transform: one raw item -> one model-ready sample (image: Tensor [C, H, W]).
        collate: a list of samples -> a batch (Tensor [B, C, H, W] or a Mapping of tensors).
        preprocessing: a one-line description of `transform`/`collate` (for the sidecar).
        architecture: e.g. `resnet18`, `ViTForImageClassification`.
        architecture_family: e.g. `resnet`, `vit`, `bert`.
        pretrained: whether trained weights were loaded (None: unknown, e.g. a saved file).
        source_labels: class names of the source head, when the weights name them.
        pretrain_dataset: the pretraining dataset, when the weights name it.
        name: the model's id in output tables (default `default_name(spec)`).
    """

    def __init__(self, module: nn.Module, *, spec: str, library: str, modality: Modality,
                 transform: Callable[[Any], Any], collate: Callable[[list], Any],
                 preprocessing: str, architecture: str, architecture_family: str,
                 pretrained: bool | None, source_labels: Sequence[str] | None = None,
                 pretrain_dataset: str | None = None, name: str | None = None) -> None:
        if modality not in ("image", "text"):
            raise ValueError(f"LoadedModel: modality must be 'image' or 'text', got {modality!r}")
        self.module = module.eval()
        self.spec = spec
        self.library = library
        self.modality: Modality = modality
        self.transform = transform
        self.collate = collate
        self.preprocessing = preprocessing
        self.architecture = architecture
        self.architecture_family = architecture_family
        self.pretrained = pretrained
        self.source_labels = tuple(source_labels) if source_labels else None
        self.pretrain_dataset = pretrain_dataset or None
        self.name = name if name is not None else default_name(spec)
        self.device = torch.device("cpu")

    # ------------------------------------------------------------------ the forward pass
    def forward(self, batch: Any) -> Forward:
        """Features [B, D] and source logits [B, Cs] (or None) of a collated batch, on
        `self.device`; differentiable (wrap in `torch.no_grad()` to extract)."""
        out = self._forward(self.to_device(batch))
        feats = out.features
        if feats.ndim != 2:
            feats = feats.flatten(1)                                   # [B, C, 1, 1] -> [B, C]
        return Forward(feats, out.logits)

    __call__ = forward

    def features(self, batch: Any) -> torch.Tensor:
        """`forward(batch).features` [B, D]."""
        return self.forward(batch).features

    def _forward(self, batch: Any) -> Forward:
        raise NotImplementedError

    @property
    def layer(self) -> str:
        """Where the features come from, in words (e.g. `input of fc`)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ device and mode
    def to(self, device: str | torch.device) -> LoadedModel:
        """Move the network to `device` (see `resolve_device`); returns self."""
        self.device = resolve_device(device)
        self.module.to(self.device)
        return self

    def to_device(self, batch: Any) -> Any:
        """A batch (Tensor or Mapping of tensors) on `self.device`."""
        if isinstance(batch, torch.Tensor):
            return batch.to(self.device, non_blocking=True)
        if isinstance(batch, Mapping):
            return {k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                    for k, v in batch.items()}
        return batch

    def train(self, mode: bool = True) -> LoadedModel:
        self.module.train(mode)
        return self

    def eval(self) -> LoadedModel:
        return self.train(False)

    def parameters(self):
        """The network's parameters (for an optimiser)."""
        return self.module.parameters()

    # ------------------------------------------------------------------ measured metadata
    @property
    def num_parameters(self) -> int:
        """Every parameter of the network, counted (trainable or not)."""
        return sum(p.numel() for p in self.module.parameters())

    def count_flops(self, batch: Any) -> int:
        """FLOPs of one forward pass on `batch` (`torch.utils.flop_counter`; a multiply-add
        counts 2). Pass a batch of one item for the per-input figure."""
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            self.forward(batch)
        return int(counter.get_total_flops())

    def describe(self) -> dict[str, Any]:
        """The model's metadata that needs no data (for models.csv and the sidecar)."""
        return {"model": self.name, "spec": self.spec, "library": self.library,
                "modality": self.modality, "architecture": self.architecture,
                "architecture_family": self.architecture_family,
                "pretrained": "" if self.pretrained is None else self.pretrained,
                "pretrain_dataset": self.pretrain_dataset or "",
                "source_labels": ", ".join(self.source_labels) if self.source_labels else "",
                "num_parameters": self.num_parameters, "layer": self.layer,
                "preprocessing": self.preprocessing}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r}, name={self.name!r}, layer={self.layer!r})"


def _call_module(module: nn.Module, batch: Any, input_name: str | None) -> Any:
    if isinstance(batch, Mapping):
        return module(**batch)
    if input_name is not None:
        return module(**{input_name: batch})
    return module(batch)


def _logits_of(output: Any) -> torch.Tensor | None:
    """The logits in a model's output: the Tensor itself, `.logits`, or a tuple's first item."""
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


class HookedModel(LoadedModel):
    """A network with a classifier head: features are the head's input (a forward pre-hook).

    Args:
        module: the network; `module(batch)` (or `module(**batch)`, or `module(**{input_name:
            batch})`) returns logits [B, Cs] (a Tensor, or an output with `.logits`).
        head: the head's module name (e.g. `fc`), `"auto"` (found on the first batch: the
            module with weights whose output is the model's output) or None (no head: `layer`
            is needed).
        layer: a module name whose output (flattened) is used as the features instead.
        input_name: keyword of the input tensor (transformers: `pixel_values`), else positional.
        **kwargs: see `LoadedModel`.

    Raises:
        ValueError: (on the first batch) no head found and no `layer`, or an unknown `layer`.
    """

    def __init__(self, module: nn.Module, *, head: str | None = "auto", layer: str | None = None,
                 input_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(module, **kwargs)
        names = dict(module.named_modules())
        if layer is not None and layer not in names:
            raise ValueError(f"{self.spec}: no module named {layer!r} for layer; last module "
                             f"names: {_last_names(names)}")
        if head not in (None, "auto") and head not in names:
            raise ValueError(f"{self.spec}: no module named {head!r} for the head; last module "
                             f"names: {_last_names(names)}")
        self.head = head
        self.layer_name = layer
        self.input_name = input_name

    @property
    def layer(self) -> str:
        if self.layer_name is not None:
            return f"output of {self.layer_name}"
        return "input of the classifier head" if self.head in (None, "auto") else \
            f"input of {self.head}"

    def resolve(self, batch: Any) -> str | None:
        """Find the head on `batch` if it is still `"auto"`; returns the head's name or None."""
        if self.head == "auto":
            self.head = self._detect_head(self.to_device(batch))
            if self.head is None and self.layer_name is None:
                raise ValueError(
                    f"{self.spec}: no classifier head detected (no module with weights returns "
                    "the model's output as logits [B, C]); name the feature layer with --layer "
                    f"NAME (last module names: {_last_names(dict(self.module.named_modules()))})")
        return self.head

    def _detect_head(self, batch: Any) -> str | None:
        """The module with weights whose output is the model's logits [B, Cs] (a classifier has
        weights: a trailing `Flatten` or `Identity` is not a head)."""
        seen: list[tuple[str, Any]] = []
        hooks = [m.register_forward_hook(lambda _m, _a, out, name=name: seen.append((name, out)))
                 for name, m in self.module.named_modules()
                 if name and next(m.parameters(recurse=False), None) is not None]
        try:
            with torch.no_grad():
                logits = _logits_of(_call_module(self.module, batch, self.input_name))
        finally:
            for hook in hooks:
                hook.remove()
        if logits is None or logits.ndim != 2:
            return None
        for name, out in seen:
            if out is logits:
                return name
        for name, out in seen:  # an output copied on its way out (e.g. `.view`)
            if isinstance(out, torch.Tensor) and out.shape == logits.shape and \
                    torch.equal(out, logits):
                return name
        return None

    def _forward(self, batch: Any) -> Forward:
        head = self.resolve(batch)
        modules = dict(self.module.named_modules())
        captured: dict[str, torch.Tensor] = {}
        hooks = []
        if self.layer_name is not None:
            hooks.append(modules[self.layer_name].register_forward_hook(
                lambda _m, _a, out: captured.setdefault("features", _first_tensor(out))))
        if head is not None:
            if self.layer_name is None:
                hooks.append(modules[head].register_forward_pre_hook(
                    lambda _m, args: captured.setdefault("features", args[0])))
            hooks.append(modules[head].register_forward_hook(
                lambda _m, _a, out: captured.setdefault("logits", out)))
        try:
            _call_module(self.module, batch, self.input_name)
        finally:
            for hook in hooks:
                hook.remove()
        if "features" not in captured:
            raise ValueError(f"{self.spec}: the layer {self.layer!r} did not run in the forward "
                             "pass")
        return Forward(captured["features"], captured.get("logits"))


def _first_tensor(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, tuple | list) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    hidden = getattr(out, "last_hidden_state", None)
    if isinstance(hidden, torch.Tensor):
        return hidden
    raise ValueError(f"layer output of type {type(out).__name__} holds no tensor")


def _last_names(modules: Mapping[str, nn.Module], k: int = 8) -> list[str]:
    return [n for n in modules if n][-k:]


class PooledModel(LoadedModel):
    """A transformers encoder without a head: a pooled vector of its last hidden states.

    Args:
        module: `AutoModel` instance; `module(**batch)` returns `last_hidden_state` [B, T, H].
        pooling: `mean` (over the attention mask, or every token), `cls` (the first token),
            `max` (over the mask) or `pooler` (the model's `pooler_output`).
        normalize: L2-normalise the pooled vector (sentence-transformers `Normalize`).
        input_name: keyword of a tensor batch (`pixel_values` for image encoders).
        why: where the pooling choice comes from (for the sidecar).
    """

    def __init__(self, module: nn.Module, *, pooling: str, normalize: bool = False,
                 input_name: str | None = None, why: str = "", **kwargs: Any) -> None:
        super().__init__(module, **kwargs)
        if pooling not in ("mean", "cls", "max", "pooler"):
            raise ValueError(f"PooledModel: pooling must be mean, cls, max or pooler, got "
                             f"{pooling!r}")
        self.pooling = pooling
        self.normalize = normalize
        self.input_name = input_name
        self.why = why

    @property
    def layer(self) -> str:
        what = ("pooler_output" if self.pooling == "pooler" else
                f"{self.pooling} pooling of last_hidden_state")
        return what + (", L2-normalised" if self.normalize else "") + \
            (f" ({self.why})" if self.why else "")

    def _forward(self, batch: Any) -> Forward:
        out = _call_module(self.module, batch, self.input_name)
        if self.pooling == "pooler":
            pooled = out.pooler_output
        else:
            hidden = out.last_hidden_state                                   # [B, T, H]
            if hidden.ndim == 4:                                             # conv: [B, C, h, w]
                hidden = hidden.flatten(2).transpose(1, 2)                   # [B, h*w, C]
            mask = batch.get("attention_mask") if isinstance(batch, Mapping) else None
            if mask is None:
                mask = torch.ones(hidden.shape[:2], device=hidden.device)
            mask = mask.unsqueeze(-1).to(hidden.dtype)                        # [B, T, 1]
            if self.pooling == "cls":
                pooled = hidden[:, 0]
            elif self.pooling == "max":
                pooled = hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).amax(1)
            else:
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)    # [B, H]
        if self.normalize:
            pooled = nn.functional.normalize(pooled, dim=-1)
        return Forward(pooled, None)


class ScriptModel(LoadedModel):
    """A TorchScript network whose output is the output of its final `aten::linear` (the head).

    Raises:
        ValueError: the forward graph does not end in a linear layer, or `layer` is given.
    """

    def __init__(self, module: torch.jit.ScriptModule, *, layer: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(module, **kwargs)
        if layer is not None:
            raise ValueError(f"{self.spec}: layer={layer!r} is not supported for TorchScript "
                             "files (a ScriptModule takes no hooks); the features are the input "
                             "of its final linear layer")
        self._function = _script_features(module, self.spec)

    @property
    def layer(self) -> str:
        return "input of the final aten::linear (TorchScript)"

    def _forward(self, batch: Any) -> Forward:
        logits, features = self._function(self.module._c, batch)
        return Forward(features, logits)


def _script_features(module: torch.jit.ScriptModule, spec: str) -> Callable:
    """A function `(module._c, x) -> (logits, features)` from the module's forward graph.

    ScriptModules take no forward hooks, so the graph is copied, inlined, and the input of the
    linear node that produces its output is added as a second output. This uses TorchScript's
    graph API (`torch._C`); no public API returns an intermediate value of a ScriptModule.
    """
    graph = module.forward.graph.copy()
    torch._C._jit_pass_inline(graph)
    outputs = list(graph.outputs())
    head = outputs[0].node() if len(outputs) == 1 else None
    if head is None or head.kind() != "aten::linear":
        kind = head.kind() if head is not None else f"{len(outputs)} outputs"
        raise ValueError(f"{spec}: the TorchScript forward does not end in a linear layer (its "
                         f"output comes from {kind}); no classifier head detected — save a "
                         "module whose forward returns the logits of an nn.Linear head")
    logits, features = outputs[0], head.inputsAt(0)
    pair = graph.create("prim::TupleConstruct", [logits, features])
    pair.output().setType(torch._C.TupleType([logits.type(), features.type()]))
    graph.appendNode(pair)
    graph.eraseOutput(0)
    graph.registerOutput(pair.output())
    return torch._C._create_function_from_graph("forward_with_features", graph)


# ---------------------------------------------------------------------------------- the registry
Loader = Callable[[str, LoadOptions], LoadedModel]
#: spec prefix -> loader; `register_loader` adds to it
LOADERS: dict[str, Loader] = {}


def register_loader(prefix: str, loader: Loader, *, replace: bool = False) -> None:
    """Make `load_model(f"{prefix}:<ref>")` call `loader("<ref>", LoadOptions(...))`.

    Raises:
        ValueError: a prefix that is not a lower-case word, or one already taken (unless
            `replace`).
    """
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", prefix):
        raise ValueError(f"register_loader: prefix must be a lower-case word, got {prefix!r}")
    if prefix in LOADERS and not replace:
        raise ValueError(f"register_loader: prefix {prefix!r} is already registered "
                         "(replace=True to override)")
    LOADERS[prefix] = loader


def parse_spec(spec: str) -> tuple[str, str]:
    """`"timm:resnet18"` -> `("timm", "resnet18")`.

    Raises:
        ValueError: no `prefix:` or an unknown prefix (the message lists the valid ones).
    """
    prefix, sep, ref = str(spec).partition(":")
    if not sep or not ref:
        raise ValueError(f"model spec {spec!r} must be PREFIX:NAME with PREFIX one of "
                         f"{sorted(LOADERS)} (e.g. timm:resnet18)")
    if prefix not in LOADERS:
        raise ValueError(f"model spec {spec!r}: Could not resolve prefix {prefix!r} among "
                         f"choices {{{', '.join(sorted(LOADERS))}}}")
    return prefix, ref


def default_name(spec: str) -> str:
    """The id of a model in output tables and folder names: the hub id or the local folder or
    file name, made safe for a path (`/` -> `__`, other odd characters -> `_`)."""
    prefix, _, ref = str(spec).partition(":")
    path = Path(ref)
    if prefix == "torch" or (prefix == "hf" and path.exists()):
        ref = path.resolve().name if prefix == "hf" else path.stem
    ref = ref.strip("/").replace("/", "__")
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", ref).strip("._") or "model"


def resolve_device(device: str | torch.device) -> torch.device:
    """`auto` -> CUDA when available, else CPU; `cuda` without a GPU is an error.

    Raises:
        ValueError: an unknown device, or CUDA asked for without one.
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"device must be cpu, cuda, cuda:N or auto, got {device!r}") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch sees no CUDA GPU "
                         f"(torch {torch.__version__}); use --device cpu or auto")
    return dev


def load_model(spec: str, *, pretrained: bool = True, layer: str | None = None,
               device: str | torch.device = "cpu", trust: bool = False,
               image_size: int | None = None, seed: int = 0,
               name: str | None = None) -> LoadedModel:
    """Load a model by spec, in eval mode, on `device`.

    Args:
        spec: `hf:<hub id or folder>`, `timm:<name>`, `torchvision:<name>`, `torch:<file>`, or
            a prefix added with `register_loader`.
        pretrained: False builds the architecture with random weights (seeded by `seed`).
        layer: module whose output gives the features (default: the classifier's input).
        device: `cpu`, `cuda`, `cuda:N` or `auto`.
        trust: allow the model's files to run code (`--trust`): a pickled `nn.Module`,
            Hugging Face `trust_remote_code`.
        image_size: resize/crop images to this size instead of the model's own.
        seed: random initialisation seed when not `pretrained`.
        name: the model's id in tables (default `default_name(spec)`).

    Returns:
        The `LoadedModel`; its `forward(batch)` gives features [B, D] and logits [B, Cs]/None.

    Raises:
        ValueError: an unknown prefix, a file that cannot be loaded safely without `trust`, a
            missing file, an unknown `layer`, a bad device.
        MissingExtraError: the family's package (timm, torchvision) is not installed.
    """
    prefix, ref = parse_spec(spec)
    if image_size is not None and image_size < 1:
        raise ValueError(f"load_model: image_size must be >= 1, got {image_size}")
    options = LoadOptions(pretrained=pretrained, layer=layer, trust=trust,
                          image_size=image_size, seed=seed)
    model = LOADERS[prefix](ref, options)
    model.spec = spec
    model.name = name if name is not None else default_name(spec)
    return model.to(device).eval()


# ---------------------------------------------------------------------------------- preprocessing
class ImageTransform:
    """PIL image -> Tensor [C, H, W] through a torchvision/timm transform, after converting the
    image to the mode the model reads (`RGB` or `L`). A class, so DataLoader workers can pickle
    it.

    Args:
        transform: PIL image (in `mode`) -> Tensor [C, H, W].
        mode: the PIL mode the model reads.
    """

    def __init__(self, transform: Callable, mode: str = "RGB") -> None:
        self.transform = transform
        self.mode = mode

    def __call__(self, image: Any) -> torch.Tensor:
        if image.mode != self.mode:
            image = image.convert(self.mode)
        return self.transform(image)

    def __repr__(self) -> str:
        inner = " ".join(repr(self.transform).split())
        return f"convert({self.mode!r}) -> {inner}"


class _HFImageTransform:
    """PIL image -> `pixel_values` [C, H, W] with a transformers image processor."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def __call__(self, image: Any) -> torch.Tensor:
        if image.mode != "RGB":
            image = image.convert("RGB")
        return self.processor(images=image, return_tensors="pt")["pixel_values"][0]

    def __repr__(self) -> str:
        return f"{type(self.processor).__name__} (AutoImageProcessor)"


class _Tokenize:
    """A list of strings -> a padded, truncated tokenizer batch (dict of tensors)."""

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return dict(self.tokenizer(list(texts), padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt"))

    def __repr__(self) -> str:
        return f"{type(self.tokenizer).__name__} (AutoTokenizer, max_length {self.max_length})"


def _identity(item: Any) -> Any:
    return item


def stack(samples: list[torch.Tensor]) -> torch.Tensor:
    """Collate image samples [C, H, W] into a batch [B, C, H, W]."""
    return torch.stack(samples)


def _center_transform(size: int, resize: int, mean: Sequence[float], std: Sequence[float],
                      interpolation: str = "bilinear") -> Callable:
    tv = require("torchvision", needed_for="image preprocessing")
    t = tv.transforms
    mode = t.InterpolationMode(interpolation)
    return t.Compose([t.Resize(resize, interpolation=mode), t.CenterCrop(size), t.ToTensor(),
                      t.Normalize(mean, std)])


def _input_channels(module: nn.Module) -> int:
    """Channels of the first 4-D weight (the first conv): 1 means grayscale input."""
    for p in module.parameters():
        if p.ndim == 4:
            return int(p.shape[1])
    return 3


# ---------------------------------------------------------------------------------- loaders
def _load_timm(ref: str, opts: LoadOptions) -> LoadedModel:
    timm = require("timm", needed_for=f"model spec 'timm:{ref}'")
    torch.manual_seed(opts.seed)
    try:
        module = timm.create_model(ref, pretrained=opts.pretrained)
    except RuntimeError as err:  # timm: "Unknown model (name)"
        raise ValueError(f"timm:{ref}: {err}") from err
    cfg = timm.data.resolve_model_data_config(module)
    if opts.image_size is not None:
        cfg = {**cfg, "input_size": (cfg["input_size"][0], opts.image_size, opts.image_size),
               "crop_pct": 1.0}
    mode = "L" if cfg["input_size"][0] == 1 else "RGB"
    transform = ImageTransform(timm.data.create_transform(**cfg, is_training=False), mode)
    classifier = module.pretrained_cfg.get("classifier")
    head: str | None = "auto"
    if module.num_classes == 0:  # timm's headless form: forward() returns the pooled features
        head = None
    elif isinstance(classifier, str) and classifier in dict(module.named_modules()) and \
            isinstance(module.get_submodule(classifier), nn.Linear):
        head = classifier
    subset = timm.data.infer_imagenet_subset(module) if opts.pretrained else None
    labels = None
    if subset and module.num_classes:
        info = timm.data.ImageNetInfo(subset)
        labels = [info.index_to_description(i) for i in range(module.num_classes)]
    if head is None and opts.layer is None:
        return _HeadlessTimm(module, spec=f"timm:{ref}", library="timm", modality="image",
                             transform=transform, collate=stack, preprocessing=repr(transform),
                             architecture=ref, architecture_family=type(module).__name__.lower(),
                             pretrained=opts.pretrained, pretrain_dataset=subset)
    return HookedModel(module, head=head, layer=opts.layer, spec=f"timm:{ref}", library="timm",
                       modality="image", transform=transform, collate=stack,
                       preprocessing=repr(transform), architecture=ref,
                       architecture_family=type(module).__name__.lower(),
                       pretrained=opts.pretrained, source_labels=labels,
                       pretrain_dataset=subset)


class _HeadlessTimm(LoadedModel):
    """A timm model created with `num_classes=0`: its output is the pooled feature vector."""

    @property
    def layer(self) -> str:
        return "output (timm model without a classifier)"

    def _forward(self, batch: Any) -> Forward:
        return Forward(self.module(batch), None)


def _load_torchvision(ref: str, opts: LoadOptions) -> LoadedModel:
    tv = require("torchvision", needed_for=f"model spec 'torchvision:{ref}'")
    try:
        weights_enum = tv.models.get_model_weights(ref)
    except ValueError as err:
        raise ValueError(f"torchvision:{ref}: unknown model; torchvision.models.list_models() "
                         f"has e.g. {tv.models.list_models()[:6]} ({err})") from err
    weights = weights_enum.DEFAULT if len(weights_enum) else None
    torch.manual_seed(opts.seed)
    module = tv.models.get_model(ref, weights=weights if opts.pretrained else None)
    if opts.image_size is not None or weights is None:
        size = opts.image_size or 224
        inner = _center_transform(size, size if opts.image_size else 256, IMAGENET_MEAN,
                                  IMAGENET_STD)
    else:
        inner = weights.transforms()  # the preprocessing the architecture was trained with
    transform = ImageTransform(inner, "RGB")
    meta = weights.meta if weights is not None and opts.pretrained else {}
    return HookedModel(module, head="auto", layer=opts.layer, spec=f"torchvision:{ref}",
                       library="torchvision", modality="image", transform=transform,
                       collate=stack, preprocessing=repr(transform), architecture=ref,
                       architecture_family=type(module).__name__.lower(),
                       pretrained=opts.pretrained, source_labels=meta.get("categories"),
                       pretrain_dataset=", ".join(meta.get("_metrics", {})) or None)


def _load_torch(ref: str, opts: LoadOptions) -> LoadedModel:
    path = Path(ref)
    if not path.is_file():
        raise ValueError(f"torch:{ref}: no such file")
    spec = f"torch:{ref}"
    module = _read_torch_file(path, trust=opts.trust)
    pretrained = None  # a file holds whatever weights were saved: trained or not is unknown
    size = opts.image_size or 224
    channels = _input_channels(module)
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else ((0.5,), (0.5,))
    transform = ImageTransform(
        _center_transform(size, size if opts.image_size else 256, mean, std),
        "L" if channels == 1 else "RGB")
    common = dict(spec=spec, library="torch", modality="image", transform=transform,
                  collate=stack, preprocessing=repr(transform), pretrained=pretrained)
    if isinstance(module, torch.jit.ScriptModule):
        arch = module.original_name
        return ScriptModel(module, layer=opts.layer, architecture=arch,
                           architecture_family=arch.lower(), **common)
    arch = type(module).__name__
    if type(module).__name__ == "UnflattenedModule":
        arch = "ExportedProgram"  # the original class name is not stored in the archive
    return HookedModel(module, head="auto", layer=opts.layer, architecture=arch,
                       architecture_family=arch.lower(), **common)


def _read_torch_file(path: Path, *, trust: bool) -> nn.Module:
    """A TorchScript archive; with `trust`, a `torch.export` archive (`.pt2`, unflattened so that
    hooks work) or a pickled module.

    Raises:
        ValueError: a state dict (no architecture), a pickled module or export archive without
            `trust`, or a file torch cannot read.
    """
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            inner = [n.split("/", 1)[-1] for n in archive.namelist()]
        if "models/model.json" in inner:  # torch.export.save
            if not trust:  # torch.export.load unpickles weights/constants (weights_only=False)
                raise ValueError(
                    f"torch:{path}: a torch.export archive; torch.export.load unpickles parts of "
                    "it, which can run arbitrary code, so tpred loads it only with --trust "
                    "(trust=True) for a file you trust — or save the model as TorchScript "
                    "(torch.jit.save(torch.jit.script(model), path))")
            try:
                return torch.export.unflatten(torch.export.load(path))
            except (RuntimeError, ValueError, KeyError) as err:
                raise ValueError(f"torch:{path}: unreadable torch.export archive "
                                 f"({type(err).__name__}: {err})") from err
        if any(n.startswith("code/") for n in inner):
            try:
                return torch.jit.load(str(path), map_location="cpu")
            except RuntimeError as err:
                raise ValueError(f"torch:{path}: unreadable TorchScript archive ({err})") from err
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if not zipfile.is_zipfile(path):
            raise ValueError(f"torch:{path}: not a TorchScript or torch.save archive "
                             f"({type(err).__name__})") from err
        if not trust:
            raise ValueError(
                f"torch:{path}: holds a pickled object (e.g. a whole nn.Module), which "
                "torch.load(weights_only=True) refuses; unpickling can run arbitrary code, so "
                "tpred loads it only with --trust (trust=True) for a file you trust — or save "
                "the model as TorchScript (torch.jit.save(torch.jit.script(model), path))"
            ) from err
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except (pickle.UnpicklingError, AttributeError, ImportError, RuntimeError) as err2:
            raise ValueError(f"torch:{path}: torch.load failed ({type(err2).__name__}: "
                             f"{err2})") from err2
    except (RuntimeError, EOFError, OSError) as err:
        raise ValueError(f"torch:{path}: unreadable ({type(err).__name__}: {err})") from err
    if isinstance(obj, nn.Module):
        return obj
    if isinstance(obj, Mapping):
        raise ValueError(f"torch:{path}: holds a state dict ({len(obj)} entries), not a model: "
                         "a state dict has no architecture; save the module itself "
                         "(TorchScript: torch.jit.save(torch.jit.script(model), path))")
    raise ValueError(f"torch:{path}: holds a {type(obj).__name__}, not an nn.Module")


def _load_hf(ref: str, opts: LoadOptions) -> LoadedModel:
    import transformers
    from transformers.models.auto import modeling_auto as auto

    spec = f"hf:{ref}"
    try:
        config = transformers.AutoConfig.from_pretrained(ref, trust_remote_code=opts.trust)
    except ValueError as err:
        if "trust_remote_code" in str(err):
            raise ValueError(f"{spec}: the model needs its own code from the hub "
                             "(trust_remote_code); tpred runs it only with --trust "
                             "(trust=True) for a repository you trust") from err
        raise ValueError(f"{spec}: {err}") from err
    except OSError as err:
        raise ValueError(f"{spec}: no local folder or reachable hub model ({err})") from err
    archs = set(config.architectures or ())
    image = config.model_type in auto.MODEL_FOR_IMAGE_MAPPING_NAMES
    if archs & set(auto.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES.values()):
        cls, has_head = transformers.AutoModelForImageClassification, True
    elif archs & set(auto.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES.values()):
        cls, has_head = transformers.AutoModelForSequenceClassification, True
    else:
        cls, has_head = transformers.AutoModel, False
    if opts.pretrained:
        module = cls.from_pretrained(ref, trust_remote_code=opts.trust)
    else:
        torch.manual_seed(opts.seed)
        module = cls.from_config(config, trust_remote_code=opts.trust)
    labels = None
    id2label = getattr(config, "id2label", None) or {}
    if has_head and opts.pretrained and id2label and not all(
            re.fullmatch(r"LABEL_\d+", str(v)) for v in id2label.values()):
        labels = [str(id2label[i]) for i in sorted(id2label)]
    arch = (config.architectures or [type(module).__name__])[0]
    common = dict(spec=spec, library="transformers", architecture=arch,
                  architecture_family=config.model_type, pretrained=opts.pretrained,
                  source_labels=labels)
    if image:
        processor = transformers.AutoImageProcessor.from_pretrained(
            ref, trust_remote_code=opts.trust)
        transform = _HFImageTransform(processor)
        common.update(modality="image", transform=transform, collate=stack,
                      preprocessing=repr(transform))
        if has_head:
            return HookedModel(module, head="auto", layer=opts.layer, input_name="pixel_values",
                               **common)
        if opts.layer is not None:
            return HookedModel(module, head=None, layer=opts.layer, input_name="pixel_values",
                               **common)
        return PooledModel(module, pooling="pooler" if _has_pooler(module) else "mean",
                           input_name="pixel_values", why="no classifier head", **common)
    tokenizer = transformers.AutoTokenizer.from_pretrained(ref, trust_remote_code=opts.trust)
    collate = _Tokenize(tokenizer, _max_length(ref, tokenizer, config))
    common.update(modality="text", transform=_identity, collate=collate,
                  preprocessing=repr(collate))
    if has_head or opts.layer is not None:
        return HookedModel(module, head="auto" if has_head else None, layer=opts.layer,
                           **common)
    pooling, normalize, why = _sentence_pooling(ref)
    return PooledModel(module, pooling=pooling, normalize=normalize, why=why, **common)


def _has_pooler(module: nn.Module) -> bool:
    return getattr(module, "pooler", None) is not None


def _hf_file(ref: str, filename: str) -> Path | None:
    """A file of a local folder or of a hub repository (None when it has none)."""
    folder = Path(ref)
    if folder.is_dir():
        return folder / filename if (folder / filename).is_file() else None
    from transformers.utils import cached_file

    found = cached_file(ref, filename, _raise_exceptions_for_missing_entries=False,
                        _raise_exceptions_for_connection_errors=False)
    return Path(found) if found else None


def _sentence_pooling(ref: str) -> tuple[str, bool, str]:
    """(pooling, normalize, why) from a sentence-transformers folder, else mean pooling."""
    pooling_file = _hf_file(ref, "1_Pooling/config.json")
    if pooling_file is None:
        return "mean", False, "no sentence-transformers pooling config; mean pooling"
    cfg = json.loads(pooling_file.read_text())
    modes = [m for m in ("cls", "mean", "max") if cfg.get(f"pooling_mode_{m}_token") or
             cfg.get(f"pooling_mode_{m}_tokens")]
    if len(modes) != 1:
        raise ValueError(f"hf:{ref}: 1_Pooling/config.json must enable exactly one of "
                         f"cls/mean/max pooling, got {modes or 'none'}")
    modules_file = _hf_file(ref, "modules.json")
    normalize = modules_file is not None and "Normalize" in modules_file.read_text()
    return modes[0], normalize, "sentence-transformers 1_Pooling/config.json"


def _max_length(ref: str, tokenizer: Any, config: Any) -> int:
    """The model's sequence limit: sentence-transformers' max_seq_length, else the smaller of
    the tokenizer's and the position embeddings' limits (at most `MAX_TEXT_TOKENS`)."""
    st_file = _hf_file(ref, "sentence_bert_config.json")
    if st_file is not None and "max_seq_length" in (st := json.loads(st_file.read_text())):
        return int(st["max_seq_length"])
    limits = [MAX_TEXT_TOKENS, getattr(config, "max_position_embeddings", None),
              getattr(tokenizer, "model_max_length", None)]
    return int(min(v for v in limits if isinstance(v, int) and v > 0))


register_loader("hf", _load_hf)
register_loader("timm", _load_timm)
register_loader("torchvision", _load_torchvision)
register_loader("torch", _load_torch)
