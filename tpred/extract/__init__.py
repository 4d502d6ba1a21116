"""From a user's own checkpoints and data to feature files and measured metadata.

Public API (stable; `tpred.finetune`, `tpred.tune` and `tpred.recommend` build on it):

* `load_model(spec, *, pretrained=True, layer=None, device="cpu", trust=False,
  image_size=None, seed=0, name=None) -> LoadedModel`: `hf:`, `timm:`, `torchvision:`,
  `torch:` specs. A `LoadedModel` has `transform` (one raw item -> sample), `collate` (samples ->
  batch), `forward(batch) -> Forward(features [B, D], logits [B, Cs] | None)` (differentiable),
  `describe()` (metadata), `to(device)`, `train()`/`eval()`, `parameters()`.
* `register_loader(prefix, loader)`: `loader(ref, LoadOptions) -> LoadedModel` for a new prefix;
  `HookedModel(module, head="head", ...)` wraps any network whose classifier is a named module.
* `open_source(source, options=None, **fields) -> DataSource`: image folders, `datasets` on
  disk or `hf:<name>`, text CSV/JSONL; `DataSource.train`/`.test` are `Split`s (`item(i)`,
  `labels`), `.classes` the class names. `register_source(prefix, opener)` adds a prefix.
* `extract_split(model, split)`, `extract_tensors(model, x)`: arrays in memory;
  `extract(models, sources, out)`: the files `python -m tpred.extract` writes.
"""

from __future__ import annotations

from tpred.extract._deps import MissingExtraError
from tpred.extract.models import (
    LOADERS,
    Forward,
    HookedModel,
    LoadedModel,
    LoadOptions,
    PooledModel,
    ScriptModel,
    default_name,
    load_model,
    parse_spec,
    register_loader,
    resolve_device,
)
from tpred.extract.run import (
    ExtractSettings,
    ExtractSummary,
    SplitArrays,
    extract,
    extract_split,
    extract_tensors,
    feature_path,
    read_pair,
    write_pair,
)
from tpred.extract.sources import (
    SOURCES,
    DataSource,
    SourceOptions,
    Split,
    open_source,
    register_source,
)

__all__ = ["LOADERS", "SOURCES", "DataSource", "ExtractSettings", "ExtractSummary", "Forward",
           "HookedModel", "LoadOptions", "LoadedModel", "MissingExtraError", "PooledModel",
           "ScriptModel", "SourceOptions", "Split", "SplitArrays", "default_name", "extract",
           "extract_split", "extract_tensors", "feature_path", "load_model", "open_source",
           "parse_spec", "read_pair", "register_loader", "register_source", "resolve_device",
           "write_pair"]
