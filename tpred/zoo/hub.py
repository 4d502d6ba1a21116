"""The digits zoo as a model hub: `digits:<model>` specs and `digits:<dataset>` data sources.

A built digits zoo folder holds `zoo.json` (the plan and seed it was built with) and, git-ignored
like `features/`, `weights/<model>.safetensors` (the trained source networks). Both make the
zoo's own networks and target data re-creatable without re-running the build:

    from tpred.zoo.hub import load_model, target_data
    net = load_model("digits:cnn-m-noisy")        # loads weights/, or trains exactly that network
    data = target_data("digits:noisy_4b_5")       # the target's train and test images

`load_model` loads `weights/<model>.safetensors` when present; when absent it trains the network
exactly as the build did (`tpred.zoo.build.train_source`: same seed keys, single-threaded,
deterministic algorithms, so the same weights bit for bit on one machine) and writes the file.
A weights file written for another plan or seed is re-trained with a warning; an unreadable one is
an error (never silently replaced).

Both prefixes are registered in `tpred.extract`'s registries when this module is imported
(`tpred.tune` imports it): `tpred.extract.load_model("digits:cnn-m-noisy")` gives a
`HookedModel` (features: the input of `.head`) and `tpred.extract.open_source("digits:noisy_4b_5")`
a `DataSource` whose items are the float images [1, 8, 8] themselves. A zoo other than the
embedded one is named in the reference: `digits:/path/to/zoo/<model>`, `digits:/path/to/zoo/
<dataset>` (ids never contain `/`).

A target's data is draw 0 of the build: its train part is exactly the images whose features are
in `features/<model>/<dataset>.npz` (what the scores were computed on); its test part is every
other target-pool image of its classes in its domain. Any id of the form
`<domain>_<num_classes><division>_<samples_per_class>` can be re-created, also one the zoo's
plan did not include (its label set comes from the same seeded draw as the plan's targets).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tpred.zoo.build import (
    SourceSpec,
    ZooPlan,
    _draws,
    _make_pools,
    _Pools,
    dataset_row,
    deterministic,
    train_source,
)
from tpred.zoo.domains import DOMAINS, apply_domain
from tpred.zoo.networks import make_network
from tpred.zoo.targets import DIVISIONS, TargetSpec, label_divisions

log = logging.getLogger(__name__)

PREFIX = "digits:"
MANIFEST = "zoo.json"
WEIGHTS_DIR = "weights"
#: the embedded default zoo, relative to the repository root
DEFAULT_ROOT = "data/digits-zoo"
_TARGET_ID = re.compile(r"^(?P<domain>[a-z]+)_(?P<n>\d+)(?P<div>[a-z])_(?P<spc>\d+)$")


# -------------------------------------------------------------------------------- manifest
def write_manifest(out: str | Path, plan: ZooPlan, seed: int) -> Path:
    """Write `<out>/zoo.json`: the plan and seed a zoo was built with (what re-creates it)."""
    path = Path(out) / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    plan_dict = asdict(plan)
    sources = plan_dict.pop("sources")
    # one source per line: a readable, diffable file
    lines = [f'  "{k}": {json.dumps(v)},' for k, v in plan_dict.items()]
    lines += ['  "sources": [', ",\n".join(f"   {json.dumps(s)}" for s in sources), "  ]"]
    text = ('{\n "builder": "tpred.zoo",\n "seed": ' + str(int(seed)) + ',\n "plan": {\n'
            + "\n".join(lines) + "\n }\n}\n")
    path.write_text(text)
    return path


def read_manifest(root: str | Path | None = None) -> tuple[ZooPlan, int]:
    """The plan and seed of a built digits zoo (`<root>/zoo.json`).

    Args:
        root: the zoo folder (default: the embedded `data/digits-zoo`; relative paths are
            resolved against the working directory).

    Raises:
        ValueError: no `zoo.json` there, or one that does not describe a digits zoo plan.
    """
    path = zoo_root(root) / MANIFEST
    if not path.is_file():
        raise ValueError(f"{path}: no {MANIFEST} here, so this is not a digits zoo built by "
                         f"`python -m tpred.zoo build` (which writes it)")
    try:
        payload = json.loads(path.read_text())
        plan = payload["plan"]
        sources = tuple(SourceSpec(**{**s, "size": tuple(s["size"]),
                                      "classes": tuple(s["classes"])})
                        for s in plan.pop("sources"))
        plan = ZooPlan(sources=sources, **{k: tuple(v) if isinstance(v, list) else v
                                           for k, v in plan.items()})
        return plan, int(payload["seed"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a digits zoo manifest ({type(err).__name__}: {err})") \
            from None


def zoo_root(root: str | Path | None = None) -> Path:
    """A zoo folder: `root` (relative to the working directory) or the embedded default."""
    from tpred.data.tables import repo_root, resolve_path

    return resolve_path(DEFAULT_ROOT, repo_root()) if root is None else resolve_path(root)


def is_digits_zoo(root: str | Path | None) -> bool:
    """Whether `root` holds a digits zoo manifest (`zoo.json`)."""
    return (zoo_root(root) / MANIFEST).is_file()


@functools.lru_cache(maxsize=4)
def _pools(plan: ZooPlan, seed: int) -> _Pools:
    return _make_pools(plan, seed)


# --------------------------------------------------------------------------------- weights
def weights_path(root: str | Path | None, model: str) -> Path:
    """`<root>/weights/<model>.safetensors`."""
    return zoo_root(root) / WEIGHTS_DIR / f"{model}.safetensors"


def _metadata(spec: SourceSpec, seed: int) -> dict[str, str]:
    """What a weights file records about its network (strings: the safetensors header)."""
    return {"model": spec.model, "seed": str(seed), "source": json.dumps(asdict(spec))}


def save_network(net: nn.Module, spec: SourceSpec, seed: int, path: str | Path) -> Path:
    """Write a source network's weights as safetensors, atomically (a temporary file, renamed).

    The header records the model id, the seed and the source spec, so a file of another build is
    recognised (`load_model` re-trains it).
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata=_metadata(spec, seed))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except Exception as err:  # noqa: BLE001  (safetensors raises its own error types)
        raise ValueError(f"{path}: not a readable safetensors weights file "
                         f"({type(err).__name__}: {err}); delete it to re-create the network") \
            from None


def source_spec(model: str, root: str | Path | None = None) -> tuple[SourceSpec, int]:
    """The source spec of `model` in the zoo at `root`, and the zoo's seed.

    Raises:
        ValueError: no manifest, or a model id the zoo does not have (the message lists them).
    """
    plan, seed = read_manifest(root)
    specs = {s.model: s for s in plan.sources}
    if model not in specs:
        raise ValueError(f"digits zoo {zoo_root(root)}: no model {model!r}; it has "
                         f"{sorted(specs)}")
    return specs[model], seed


def source_network(model: str, root: str | Path | None = None, *, save: bool = True
                   ) -> nn.Module:
    """The trained source network `model` of the digits zoo at `root` (eval mode).

    Loaded from `<root>/weights/<model>.safetensors` when that file was written for this plan
    and seed; otherwise trained exactly as `python -m tpred.zoo build` trained it (and written
    there when `save`).

    Raises:
        ValueError: no manifest, an unknown model id, or an unreadable weights file.
    """
    spec, seed = source_spec(model, root)
    path = weights_path(root, model)
    if path.is_file():
        state, meta = _read_weights(path)
        if meta == _metadata(spec, seed):
            net = make_network(spec.family, spec.size, len(spec.classes))
            try:
                net.load_state_dict(state)
            except RuntimeError as err:
                raise ValueError(f"{path}: weights do not fit network {model!r} ({err})") \
                    from None
            return net.eval()
        warnings.warn(f"{path}: written for another build (seed or source spec differ); "
                      f"re-training {model!r}", UserWarning, stacklevel=2)
    plan, _ = read_manifest(root)
    with deterministic():
        net, _ = train_source(spec, _pools(plan, seed), seed=seed, batch_size=plan.batch_size)
    if save:
        save_network(net, spec, seed, path)
        log.info("trained %s and wrote %s", model, path)
    return net.eval()


def parse_spec(spec: str, what: str = "model") -> str:
    """The id of a `digits:<id>` spec.

    Raises:
        ValueError: not a `digits:` spec, or an empty id.
    """
    if not isinstance(spec, str) or not spec.startswith(PREFIX) or not spec[len(PREFIX):]:
        raise ValueError(f"expected a {what} spec 'digits:<{what}-id>', got {spec!r}")
    return spec[len(PREFIX):]


def load_model(spec: str, *, root: str | Path | None = None) -> nn.Module:
    """The network of a `digits:[<zoo folder>/]<model>` spec (see `source_network`); a folder
    in the spec wins over `root`."""
    folder, model = split_ref(parse_spec(spec, "model"))
    return source_network(model, folder if folder is not None else root)


# ------------------------------------------------------------------------------------ data
@dataclass(frozen=True, eq=False)
class TargetData:
    """A target dataset's images and labels (original digit values 0..9).

    Shapes: x_train [N, 1, 8, 8] float32; y_train [N] int64; x_test [M, 1, 8, 8]; y_test [M].

    Attributes:
        dataset: the id.
        metadata: its `datasets.csv` row (dataset, domain, num_classes, samples_per_class,
            division, labels, train_size, test_size).
    """

    dataset: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    metadata: dict[str, Any]


def parse_target(dataset: str, seed: int) -> TargetSpec:
    """The target spec of an id `<domain>_<num_classes><division>_<samples_per_class>`.

    Raises:
        ValueError: an id not of that form, an unknown domain or division, or sizes out of range.
    """
    match = _TARGET_ID.match(dataset)
    if match is None:
        raise ValueError(f"digits target id {dataset!r} is not of the form "
                         f"<domain>_<num_classes><division>_<samples_per_class>, e.g. "
                         f"'noisy_4b_10'")
    domain, n, div, spc = (match["domain"], int(match["n"]), match["div"], int(match["spc"]))
    if domain not in DOMAINS:
        raise ValueError(f"digits target id {dataset!r}: unknown domain {domain!r}; valid: "
                         f"{sorted(DOMAINS)}")
    if div not in DIVISIONS:
        raise ValueError(f"digits target id {dataset!r}: unknown division {div!r}; valid: "
                         f"{list(DIVISIONS)}")
    if not 2 <= n <= 10 or spc < 1:
        raise ValueError(f"digits target id {dataset!r}: num_classes must be in 2..10 and "
                         f"samples_per_class >= 1")
    # the same seeded draw as `tpred.zoo.targets.make_targets`
    classes = label_divisions(n, np.random.default_rng([seed, 2024, n]))[div]
    return TargetSpec(dataset, domain, classes, spc, div)


def target_data(source: str, root: str | Path | None = None, *, draw: int = 0) -> TargetData:
    """The images of a `digits:<dataset>` data source, as the zoo at `root` made them.

    Args:
        source: `digits:<dataset id>` (or the bare id).
        root: the zoo folder (default: the embedded zoo).
        draw: which train/test draw (0: the draw the feature files and scores used).

    Raises:
        ValueError: no manifest; a malformed id; a class with too few images in the target pool
            for `samples_per_class`.
    """
    folder, dataset = split_ref(parse_spec(source, "dataset") if source.startswith(PREFIX)
                                else source)
    root = folder if folder is not None else root
    plan, seed = read_manifest(root)
    target = parse_target(dataset, seed)
    pools = _pools(plan, seed)
    pool_y = pools.y[pools.target]
    if (short := min(int((pool_y == c).sum()) for c in target.classes)) \
            <= target.samples_per_class:
        raise ValueError(f"digits target {dataset!r}: samples_per_class "
                         f"{target.samples_per_class} leaves no test image (a class has "
                         f"{short} images in the target pool)")
    *_, (train, test) = _draws(target, pools, draw + 1, seed)       # the last of draw + 1
    images = pools.images.get(target.domain)
    if images is None:  # a domain outside the plan's: rendered as the build renders domains
        from sklearn.datasets import load_digits

        images = apply_domain(load_digits().images / 16.0, target.domain, seed=seed)
    as_x = lambda idx: torch.from_numpy(np.ascontiguousarray(images[idx][:, None]))  # noqa: E731
    as_y = lambda idx: torch.from_numpy(pools.y[idx].astype(np.int64))  # noqa: E731
    return TargetData(dataset, as_x(train), as_y(train), as_x(test), as_y(test),
                      dataset_row(target, len(train), len(test)))


# ------------------------------------------------------------------- tpred.extract registries
def split_ref(ref: str) -> tuple[str | None, str]:
    """`"<zoo folder>/<id>"` -> (folder, id); a bare id -> (None, id): the embedded zoo."""
    folder, sep, name = ref.rpartition("/")
    return (folder or "/", name) if sep else (None, ref)


def _identity(item: torch.Tensor) -> torch.Tensor:
    return item


def _digit_tensor(item: Any) -> torch.Tensor:
    """A digits model's preprocessing: a float image [1, 8, 8] as is; a PIL image (e.g. an
    image folder's PNG) to grey, resized to 8×8 (bilinear), scaled to [0, 1]."""
    if isinstance(item, torch.Tensor):
        return item
    from PIL import Image

    grey = item.convert("L").resize((8, 8), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(grey, dtype=np.float32) / 255.0)[None]


def _stack(samples: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(samples)


def _extract_loader(ref: str, options: Any) -> Any:
    """`tpred.extract` loader of `digits:[<zoo folder>/]<model>` (a `HookedModel`)."""
    from tpred.extract import HookedModel
    from tpred.zoo.targets import CLASS_NAMES

    root, model = split_ref(ref)
    spec, seed = source_spec(model, root)
    if options.image_size not in (None, 8):
        raise ValueError(f"digits:{ref}: digits models read 8×8 images; image_size "
                         f"{options.image_size} is not supported")
    if options.pretrained:
        net = source_network(model, root)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(options.seed)
            net = make_network(spec.family, spec.size, len(spec.classes)).eval()
    return HookedModel(net, head="head" if options.layer is None else None, layer=options.layer,
                       spec=f"{PREFIX}{ref}", library="tpred.zoo", modality="image",
                       transform=_digit_tensor, collate=_stack,
                       preprocessing="float images [1, 8, 8] in [0, 1] as they are; PIL "
                                     "images to grey, resized to 8x8 (bilinear), / 255",
                       architecture=type(net).__name__, architecture_family=net.family,
                       pretrained=options.pretrained,
                       source_labels=[CLASS_NAMES[c] for c in spec.classes],
                       pretrain_dataset=spec.pretrain_dataset, name=model)


def _extract_source(ref: str, options: Any) -> Any:
    """`tpred.extract` opener of `digits:[<zoo folder>/]<dataset>` (train and test splits)."""
    from tpred.extract import DataSource, Split
    from tpred.zoo.targets import CLASS_NAMES

    data = target_data(ref)
    dataset = data.dataset
    classes = np.unique(data.y_train.numpy())

    def split(name: str, x: torch.Tensor, y: torch.Tensor) -> Any:
        return Split(name, np.searchsorted(classes, y.numpy()), list(x), _identity,
                     lambda item: f"digits:{ref} [{name}]")

    return DataSource(options.name or dataset, f"{PREFIX}{ref}", "digits", "image",
                      tuple(CLASS_NAMES[c] for c in classes),
                      split("train", data.x_train, data.y_train),
                      split("test", data.x_test, data.y_test))


def register() -> None:
    """Register `digits:` in `tpred.extract`'s model and data-source registries (idempotent)."""
    from tpred.extract import LOADERS, SOURCES, register_loader, register_source

    if LOADERS.get("digits") is not _extract_loader:
        register_loader("digits", _extract_loader, replace=True)
    if SOURCES.get("digits") is not _extract_source:
        register_source("digits", _extract_source, replace=True)


register()
