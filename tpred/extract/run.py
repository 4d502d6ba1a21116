"""Running models over data sources: arrays in memory, feature files on disk, measured tables.

* `extract_split(model, split)`: features [N, D], source-head probabilities [N, Cs] and labels of
  one split, batch by batch (items are read and preprocessed per batch, never all held at once);
  unreadable items are left out and reported, never silently.
* `extract_tensors(model, x)`: the same for inputs already in memory (the digits zoo builder).
* `extract(models, sources, out)`: every (model, dataset) pair into `out/<model>/<dataset>.npz`
  plus a JSON sidecar, `out/models.csv`, `out/datasets.csv` (measured rows, merged with earlier
  runs) and `out/errors.csv` (one row per failed pair or unreadable item, with the reason).
  A finished pair is skipped on a rerun; files are written to a temporary name and renamed, so a
  killed run leaves no half-written file.

The `.npz` layout is what `tpred.score` reads: `features` [N, D] float32, `labels` [N] int64
(positions in `classes`), `probs` [N, Cs] float32 (when the model has a source head), plus
`classes` [C] (str) and, when the data has a test split, `test_features`, `test_labels`,
`test_probs` (ignored by scoring; used by `tpred.finetune`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from tpred.extract.models import LoadedModel, LoadOptions, default_name, load_model, parse_spec
from tpred.extract.sources import DataSource, SourceOptions, Split, open_source
from tpred.parallel import check_options, run_tasks

__all__ = ["ERROR_COLUMNS", "ExtractSettings", "ExtractSummary", "SplitArrays", "extract",
           "extract_split", "extract_tensors", "feature_path", "merge_rows", "read_pair",
           "write_pair"]

log = logging.getLogger(__name__)

ERROR_COLUMNS = ["model", "dataset", "item", "reason"]


@dataclass
class SplitArrays:
    """What `extract_split` returns.

    Attributes:
        features: [N, D] float32.
        labels: [N] int64.
        probs: [N, Cs] float32 softmax of the source head, or None without a head.
        kept: [N] positions in the split of the rows above (items that could not be read are
            missing from it).
        failures: `(item description, reason)` of every item left out.
        flops: FLOPs of one forward pass on the first item (None if nothing was read).
        input_shape: shape of that one-item batch (e.g. `1x3x224x224`, `1x12 tokens`).
    """

    features: np.ndarray
    labels: np.ndarray
    probs: np.ndarray | None
    kept: np.ndarray
    failures: list[tuple[str, str]] = field(default_factory=list)
    flops: int | None = None
    input_shape: str = ""


class _Failed:
    """An item that could not be read or preprocessed (kept apart, reported with the reason)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class ItemDataset(torch.utils.data.Dataset):
    """`(position, model-ready sample)` of a split; `_Failed` for an unreadable item."""

    def __init__(self, split: Split, transform: Any) -> None:
        self.split = split
        self.transform = transform

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[int, Any]:
        try:
            return i, self.transform(self.split.item(i))
        except (ValueError, OSError, TypeError) as err:  # a corrupt item: reported, not fatal
            return i, _Failed(str(err) if str(err).startswith(self.split.describe(i)) else
                              f"{type(err).__name__}: {err}")


class CollateItems:
    """A list of `(position, sample)` -> (positions [b], batch or None, failures)."""

    def __init__(self, collate: Any) -> None:
        self.collate = collate

    def __call__(self, pairs: list[tuple[int, Any]]) -> tuple[np.ndarray, Any, list]:
        good = [(i, s) for i, s in pairs if not isinstance(s, _Failed)]
        failures = [(i, s.reason) for i, s in pairs if isinstance(s, _Failed)]
        index = np.array([i for i, _ in good], dtype=np.int64)
        batch = self.collate([s for _, s in good]) if good else None
        return index, batch, failures


def _autocast(model: LoadedModel, amp: bool) -> contextlib.AbstractContextManager:
    """float16 autocast on CUDA when `amp`; nothing on the CPU (autocast there is slower)."""
    if amp and model.device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def _run_batches(model: LoadedModel, batches: Iterable[tuple[np.ndarray, Any]], total: int,
                 *, amp: bool) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Features [n, D], probs [n, Cs] or None and positions [n] of the batches' items.

    The output arrays are allocated once (`total` rows) when the first batch gives D and Cs;
    rows of items that never arrive (unreadable) are cut at the end.
    """
    feats: np.ndarray | None = None
    probs: np.ndarray | None = None
    kept = np.empty(total, dtype=np.int64)
    filled = 0
    model.eval()
    with torch.no_grad(), _autocast(model, amp):
        for index, batch in batches:
            out = model.forward(batch)
            f = out.features.float().cpu().numpy()                          # [b, D]
            if feats is None:
                feats = np.empty((total, f.shape[1]), dtype=np.float32)
                if out.logits is not None:
                    probs = np.empty((total, out.logits.shape[1]), dtype=np.float32)
            rows = slice(filled, filled + len(index))
            feats[rows] = f
            if probs is not None:
                # float64 softmax: float32 rows of 1000 classes sum to 1 only within ~1e-6
                probs[rows] = torch.softmax(out.logits.double(), dim=1).cpu().numpy()
            kept[rows] = index
            filled += len(index)
    if feats is None:
        raise ValueError("no item could be read")
    if filled < total:
        feats, kept = feats[:filled], kept[:filled]
        probs = probs[:filled] if probs is not None else None
    return feats, probs, kept


def extract_split(model: LoadedModel, split: Split, *, batch_size: int = 64, amp: bool = True,
                  workers: int = 0, progress: bool = False, desc: str = "") -> SplitArrays:
    """Run `model` over a split: features, source-head probabilities and labels.

    Items are read and preprocessed by a `torch.utils.data.DataLoader` (`workers` processes; 0
    reads in this process) with the model's own `transform` and `collate`; only one batch of
    inputs is held at a time, the outputs are written into arrays allocated once.

    Args:
        model: a `LoadedModel` (moved to its device already).
        split: the split to run over.
        batch_size: items per forward pass.
        amp: float16 autocast on CUDA.
        workers: DataLoader worker processes.
        progress: show a tqdm bar over batches.

    Returns:
        `SplitArrays` (features [N, D] float32, labels [N], probs [N, Cs] float32 or None, the
        positions kept, the items left out with their reasons, FLOPs of one input).

    Raises:
        ValueError: no item of the split could be read (the reasons of the first failures).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    loader = torch.utils.data.DataLoader(
        ItemDataset(split, model.transform), batch_size=batch_size, shuffle=False,
        num_workers=workers, collate_fn=CollateItems(model.collate),
        pin_memory=model.device.type == "cuda")
    failures: list[tuple[str, str]] = []
    first: list[Any] = []

    def batches() -> Iterator[tuple[np.ndarray, Any]]:
        bar = tqdm(total=len(split), unit="item", desc=desc, leave=False, disable=not progress)
        with bar:
            for index, batch, failed in loader:
                failures.extend((split.describe(i), reason) for i, reason in failed)
                bar.update(len(index) + len(failed))
                if batch is not None:
                    if not first:
                        first.append(_first_item(batch))
                    yield index, batch

    try:
        feats, probs, kept = _run_batches(model, batches(), len(split), amp=amp)
    except ValueError as err:
        if str(err) != "no item could be read":
            raise
        shown = "; ".join(r for _, r in failures[:2])
        raise ValueError(f"{split.name} split: no item could be read ({len(failures)} "
                         f"failure(s); first: {shown})") from err
    flops = model.count_flops(first[0])
    return SplitArrays(feats, split.labels[kept], probs, kept, failures, flops,
                       _shape_text(first[0]))


def extract_tensors(model: LoadedModel, x: torch.Tensor, *, batch_size: int | None = None,
                    amp: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Features [N, D] and source-head probabilities [N, Cs] (or None) of inputs in memory.

    Args:
        model: a `LoadedModel`.
        x: model-ready inputs [N, ...] (already preprocessed).
        batch_size: items per forward pass (None: all at once).
    """
    size = len(x) if batch_size is None else batch_size
    starts = range(0, len(x), max(size, 1))
    batches = ((np.arange(s, min(s + size, len(x))), x[s:s + size]) for s in starts)
    feats, probs, _ = _run_batches(model, batches, len(x), amp=amp)
    return feats, probs


def _first_item(batch: Any) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch[:1]
    if isinstance(batch, Mapping):
        return {k: v[:1] if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    return batch


def _shape_text(batch: Any) -> str:
    if isinstance(batch, torch.Tensor):
        return "x".join(map(str, batch.shape))
    if isinstance(batch, Mapping) and isinstance(batch.get("input_ids"), torch.Tensor):
        return f"1x{batch['input_ids'].shape[1]} tokens"
    return ""


# ---------------------------------------------------------------------------------- files
def feature_path(out: str | Path, model: str, dataset: str) -> Path:
    """`out/<model>/<dataset>.npz`."""
    return Path(out) / model / f"{dataset}.npz"


def write_atomic(path: Path, write: Any) -> None:
    """Write through a temporary file in the same folder, then rename (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_pair(path: str | Path, arrays: Mapping[str, np.ndarray],
               sidecar: Mapping[str, Any] | None = None, *, compress: bool = False) -> None:
    """Write one pair's arrays (`path`, .npz) and its sidecar (`path` with `.json`), atomically;
    the sidecar first, so an existing .npz always has its sidecar."""
    path = Path(path)
    if sidecar is not None:
        text = json.dumps(sidecar, indent=1, default=str).encode()
        write_atomic(path.with_suffix(".json"), lambda fh: fh.write(text))
    save = np.savez_compressed if compress else np.savez
    write_atomic(path, lambda fh: save(fh, **arrays))


def read_pair(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of a pair's .npz (no pickles).

    Raises:
        ValueError: the file is missing or not an .npz of arrays.
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path}: unreadable .npz ({type(err).__name__}: {err})") from err


def merge_rows(path: str | Path, rows: Sequence[Mapping[str, Any]], key: str | list[str]
               ) -> pd.DataFrame:
    """Merge `rows` into the CSV at `path` by `key`: a row replaces the old one with the same key
    in its place, other rows stay as written, new keys are appended, new columns are added
    (blank for older rows); written atomically.

    Raises:
        ValueError: the existing file lacks the key column(s).
    """
    path = Path(path)
    keys = [key] if isinstance(key, str) else list(key)
    new = pd.DataFrame(list(rows)).astype(object).fillna("").astype(str)
    if path.exists() and path.stat().st_size:
        old = pd.read_csv(path, dtype=str, keep_default_na=False)
        if missing := [k for k in keys if k not in old.columns]:
            raise ValueError(f"{path}: missing key column(s) {missing}; found "
                             f"{list(old.columns)}")
        columns = list(old.columns) + [c for c in new.columns if c not in old.columns]
        old, new = old.reindex(columns=columns, fill_value=""), \
            new.reindex(columns=columns, fill_value="")
        old_keys, new_keys = old.set_index(keys).index, new.set_index(keys).index
        at = old_keys.get_indexer(new_keys)                # -1: a new key, appended
        old.iloc[at[at >= 0]] = new[at >= 0].to_numpy()    # an updated row keeps its place
        table = pd.concat([old, new[at < 0]], ignore_index=True)
    else:
        table = new
    text = table.to_csv(index=False).encode()
    write_atomic(path, lambda fh: fh.write(text))
    return table


# ---------------------------------------------------------------------------------- the run
@dataclass(frozen=True)
class ExtractSettings:
    """Options of `extract` that every pair shares (picklable: sent to workers).

    Args:
        pretrained, layer, trust, image_size, seed: see `load_model`.
        device: `cpu`, `cuda`, `cuda:N` or `auto`.
        batch_size: items per forward pass.
        amp: float16 autocast on CUDA.
        workers: DataLoader processes per pair.
        source: how sources are read (`SourceOptions`).
    """

    pretrained: bool = True
    layer: str | None = None
    trust: bool = False
    image_size: int | None = None
    seed: int = 0
    device: str = "cpu"
    batch_size: int = 64
    amp: bool = True
    workers: int = 0
    source: SourceOptions = field(default_factory=SourceOptions)


@dataclass(frozen=True)
class _Task:
    spec: str
    name: str
    source: str
    dataset: str
    run_id: str  # caches of a worker process never outlive one `extract` call


@dataclass
class _PairResult:
    model: str
    dataset: str
    status: str  # "done", "failed", or "n/a" (the model does not read this modality)
    model_row: dict[str, Any] | None = None
    dataset_row: dict[str, Any] | None = None
    errors: list[tuple[str, str, str, str]] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class ExtractSummary:
    """What `extract` did.

    Attributes:
        num_pairs: (model, dataset) pairs asked for.
        num_skipped: pairs whose .npz existed (not redone).
        num_other_modality: pairs of an image model and text data or the reverse (not run).
        num_done: pairs extracted in this run.
        num_failed: pairs that failed (reasons in `errors_csv`).
        num_item_errors: items left out of finished pairs (unreadable), also in `errors_csv`.
        seconds: wall time.
    """

    num_pairs: int
    num_skipped: int
    num_other_modality: int
    num_done: int
    num_failed: int
    num_item_errors: int
    seconds: float
    out: Path
    errors_csv: Path

    def __str__(self) -> str:
        return (f"{self.num_pairs} pair(s): {self.num_done} extracted, {self.num_skipped} "
                f"already done, {self.num_other_modality} of another modality, "
                f"{self.num_failed} failed; {self.num_item_errors} unreadable "
                f"item(s) left out -> {self.out} ({self.seconds:.1f} s"
                + (f"; errors in {self.errors_csv})" if self.num_failed or self.num_item_errors
                   else ")"))


class _Cache:
    """The last loaded model and the opened sources of one process and one `extract` call
    (tasks come model by model, so each model is loaded once per worker)."""

    def __init__(self) -> None:
        self.run_id = ""
        self.key: tuple | None = None
        self.model: LoadedModel | None = None
        self.sources: dict[tuple[str, str], DataSource] = {}

    def start(self, run_id: str) -> None:
        if run_id != self.run_id:
            self.run_id, self.key, self.model, self.sources = run_id, None, None, {}

    def get_model(self, task: _Task, settings: ExtractSettings) -> LoadedModel:
        self.start(task.run_id)
        key = (task.spec, task.name, settings)
        if self.key != key:
            self.model = None  # free the previous one first
            self.model = load_model(task.spec, pretrained=settings.pretrained,
                                    layer=settings.layer, device=settings.device,
                                    trust=settings.trust, image_size=settings.image_size,
                                    seed=settings.seed, name=task.name)
            self.key = key
        assert self.model is not None
        return self.model

    def get_source(self, task: _Task, settings: ExtractSettings) -> DataSource:
        self.start(task.run_id)
        key = (task.source, task.dataset)
        if key not in self.sources:
            self.sources[key] = open_source(task.source, settings.source, name=task.dataset)
        return self.sources[key]


_CACHE = _Cache()


def _extract_pair(task: _Task, settings: ExtractSettings, out: Path, *,
                  progress: bool = False) -> _PairResult:
    """Extract one pair into `out`; every failure becomes an error row, never an exception."""
    start = time.perf_counter()
    result = _PairResult(task.name, task.dataset, status="failed")
    try:
        source = _CACHE.get_source(task, settings)
        model = _CACHE.get_model(task, settings)
        if model.modality != source.modality:  # not a pair at all: counted, not an error
            result.status = "n/a"
            return result
        arrays: dict[str, np.ndarray] = {"classes": np.asarray(source.classes, dtype=str)}
        sidecar_splits = {}
        first: SplitArrays | None = None
        for split_name, split in source.splits.items():
            got = extract_split(model, split, batch_size=settings.batch_size, amp=settings.amp,
                                workers=settings.workers, progress=progress,
                                desc=f"{task.name}/{task.dataset} {split_name}")
            first = first or got
            prefix = "" if split_name == "train" else f"{split_name}_"
            arrays[f"{prefix}features"] = got.features
            arrays[f"{prefix}labels"] = got.labels
            if got.probs is not None:
                arrays[f"{prefix}probs"] = got.probs
            result.errors.extend((task.name, task.dataset, item, reason)
                                 for item, reason in got.failures)
            sidecar_splits[split_name] = {"size": len(got.labels), "left_out": len(got.failures)}
        assert first is not None
        seconds = time.perf_counter() - start
        described = model.describe()
        sidecar = {**described, "dataset": task.dataset, "source": source.location,
                   "feature_dim": int(first.features.shape[1]),
                   "num_source_classes": None if first.probs is None else
                   int(first.probs.shape[1]),
                   "classes": list(source.classes), "splits": sidecar_splits,
                   "notes": source.notes, "left_out": [e[2] for e in result.errors],
                   "seconds": round(seconds, 3), "device": str(model.device),
                   "amp": settings.amp and model.device.type == "cuda",
                   "batch_size": settings.batch_size,
                   "settings": {k: v for k, v in asdict(settings).items() if k != "source"}}
        write_pair(feature_path(out, task.name, task.dataset), arrays, sidecar)
        result.model_row = {**{k: v for k, v in described.items() if k not in ("preprocessing",)},
                            "feature_dim": sidecar["feature_dim"],
                            "num_source_classes": sidecar["num_source_classes"],
                            "flops": first.flops, "flops_input": first.input_shape,
                            # how to load it again (tpred.recommend, tpred.tune): the options
                            # this run gave load_model; blank = the loader's default
                            **LoadOptions(pretrained=settings.pretrained, layer=settings.layer,
                                          image_size=settings.image_size,
                                          seed=settings.seed).columns()}
        result.dataset_row = source.describe()
        result.status = "done"
    # one model's or dataset's failure must not stop the others: whatever it raises (user
    # models raise anything) is recorded with its type and message, and the run goes on
    except Exception as err:  # noqa: BLE001
        log.debug("pair %s/%s failed", task.name, task.dataset, exc_info=True)
        result.errors.append((task.name, task.dataset, "", f"{type(err).__name__}: {err}"))
    result.seconds = time.perf_counter() - start
    return result


def check_names(specs: Sequence[str], names: Sequence[str] | None) -> list[str]:
    """One id per spec: `names` or `default_name`; two specs with one id is an error."""
    for spec in specs:
        parse_spec(spec)
    if names is not None and len(names) != len(specs):
        raise ValueError(f"names: give one name per model ({len(specs)}), got {len(names)}")
    ids = list(names) if names is not None else [default_name(s) for s in specs]
    seen: dict[str, str] = {}
    for spec, name in zip(specs, ids, strict=True):
        if name in seen:
            raise ValueError(f"models {seen[name]!r} and {spec!r} would both be named {name!r}; "
                             "give distinct names (--names)")
        seen[name] = spec
    return ids


def extract(models: Sequence[str], sources: Sequence[str | Path], out: str | Path, *,
            names: Sequence[str] | None = None, dataset_names: Sequence[str] | None = None,
            settings: ExtractSettings | None = None, backend: str = "loky", jobs: int = 1,
            address: str | None = None, retries: int = 2, overwrite: bool = False,
            progress: bool = True) -> ExtractSummary:
    """Extract every (model, source) pair into `out` (see the module docstring for the files).

    Args:
        models: model specs (see `load_model`).
        sources: data sources (see `open_source`).
        out: output folder.
        names: model ids (default `default_name(spec)`), one per spec.
        dataset_names: dataset ids (default the folder/file name), one per source.
        settings: `ExtractSettings` shared by every pair.
        backend, jobs, address, retries: where the pairs run, one task each
            (`tpred.parallel.run_tasks`: `loky` local processes, `dask` or `ray` clusters; on a
            cluster, `out` and the data must be on storage every worker reads and writes).
            `jobs=1` on loky runs in this process.
        overwrite: redo pairs whose .npz exists.
        progress: tqdm bars (pairs; batches when running in this process).

    Returns:
        An `ExtractSummary`.

    Raises:
        ValueError: an unknown spec prefix, two models or datasets with one id, bad execution
            options (`tpred.parallel.check_options`) or an unreachable cluster.
            Failures of single pairs (a model that cannot load, a source that cannot be read,
            an item that cannot be decoded) never raise: they are rows of `out/errors.csv`.
    """
    from tpred.extract.sources import source_name

    start = time.perf_counter()
    settings = settings or ExtractSettings()
    out = Path(out)
    model_ids = check_names(list(models), names)
    if dataset_names is not None and len(dataset_names) != len(sources):
        raise ValueError(f"dataset_names: give one name per source ({len(sources)}), got "
                         f"{len(dataset_names)}")
    dataset_ids = (list(dataset_names) if dataset_names is not None else
                   [settings.source.name or source_name(str(s)) for s in sources])
    if len(set(dataset_ids)) != len(dataset_ids):
        dup = next(d for d in dataset_ids if dataset_ids.count(d) > 1)
        raise ValueError(f"two data sources would both be named {dup!r}; give distinct names")
    check_options(backend, jobs, address, retries)

    run_id = uuid.uuid4().hex
    tasks, skipped = [], 0
    for spec, name in zip(models, model_ids, strict=True):
        for source, dataset in zip(sources, dataset_ids, strict=True):
            if not overwrite and feature_path(out, name, dataset).exists():
                skipped += 1
                continue
            tasks.append(_Task(spec, name, str(source), dataset, run_id))
    out.mkdir(parents=True, exist_ok=True)
    errors_csv = out / "errors.csv"
    num_done = num_failed = num_items = num_other = 0
    attempted: set[tuple[str, str]] = set()
    error_rows: list[tuple[str, str, str, str]] = []
    results = _run_tasks(tasks, settings, out, backend=backend, jobs=jobs, address=address,
                         retries=retries, progress=progress)
    for res in results:
        attempted.add((res.model, res.dataset))
        error_rows.extend(res.errors)
        if res.status == "n/a":
            num_other += 1
        elif res.status == "done":
            num_done += 1
            num_items += len(res.errors)
            merge_rows(out / "models.csv", [res.model_row], "model")
            merge_rows(out / "datasets.csv", [res.dataset_row], "dataset")
        else:
            num_failed += 1
            log.warning("%s/%s: %s", res.model, res.dataset, res.errors[-1][3])
        _write_errors(errors_csv, attempted, error_rows)  # kept current if the run stops
    _write_errors(errors_csv, attempted, error_rows)
    summary = ExtractSummary(len(model_ids) * len(dataset_ids), skipped, num_other, num_done,
                             num_failed, num_items, time.perf_counter() - start, out, errors_csv)
    log.info("%s", summary)
    return summary


def _write_errors(path: Path, attempted: set[tuple[str, str]],
                  rows: list[tuple[str, str, str, str]]) -> None:
    """errors.csv: rows of earlier runs for pairs not attempted now, plus this run's rows."""
    old = (pd.read_csv(path, dtype=str, keep_default_na=False)
           if path.exists() and path.stat().st_size else pd.DataFrame(columns=ERROR_COLUMNS))
    if list(old.columns) != ERROR_COLUMNS:
        raise ValueError(f"{path}: not an errors table (columns {list(old.columns)}, expected "
                         f"{ERROR_COLUMNS})")
    keep = ~pd.Series(list(zip(old["model"], old["dataset"], strict=True)),
                      dtype=object).isin(attempted).to_numpy() if len(old) else []
    table = pd.concat([old[keep] if len(old) else old,
                       pd.DataFrame(rows, columns=ERROR_COLUMNS)], ignore_index=True)
    text = table.to_csv(index=False).encode()
    write_atomic(path, lambda fh: fh.write(text))


def _run_tasks(tasks: list[_Task], settings: ExtractSettings, out: Path, *, backend: str,
               jobs: int, address: str | None, retries: int, progress: bool
               ) -> Iterator[_PairResult]:
    """Pair results as they finish: one `tpred.parallel` task per pair (in this process, in
    order, when `jobs` is 1 on loky; per-batch progress bars only then)."""
    inline = backend == "loky" and jobs == 1
    work = partial(_extract_pair, settings=settings, out=out, progress=progress and inline)
    for outcome in run_tasks(work, tasks, backend=backend, jobs=jobs, address=address,
                             retries=retries, progress=progress, desc="extracting"):
        if outcome.ok:
            yield outcome.result
        else:  # the engine lost the task (e.g. its worker died every time it was retried)
            task = outcome.task
            yield _PairResult(task.name, task.dataset, "failed",
                              errors=[(task.name, task.dataset, "", str(outcome.error))])
