"""The `finetune` protocol: the whole network and a new linear head trained for a fixed budget.

`finetune_model(model, source, FinetuneSettings(...))` trains `model.features` (the penultimate
layer `tpred.extract` reads; the source head is left out) and a new `nn.Linear(D, C)` with AdamW
and cross-entropy for `epochs` passes over the train split (seeded shuffling and head
initialisation; float16 autocast with gradient scaling on CUDA), then reports accuracy on the
test split. `finetune(models, sources, out_csv)` does it for every (model, dataset) pair, one
`tpred.parallel` task each, resumably (see `tpred.finetune.records`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from torch import nn

from tpred.extract.models import LoadedModel, load_model
from tpred.extract.run import CollateItems, ExtractSettings, ItemDataset, check_names
from tpred.extract.sources import DataSource, Split, open_source, source_name
from tpred.finetune.records import (
    RecordsWriter,
    done_pairs,
    format_settings,
    read_records_table,
)
from tpred.parallel import check_options, run_tasks

PROTOCOL = "finetune"


@dataclass(frozen=True)
class FinetuneSettings:
    """The fixed budget of the `finetune` protocol.

    Args:
        epochs: passes over the train split.
        lr: AdamW learning rate (network and head).
        batch_size: items per step.
        weight_decay: AdamW's decoupled weight decay.
        seed: seed of the head's initialisation, the shuffling and dropout.
        extract: how models are loaded and data read (device, AMP, image size, sources...).
    """

    epochs: int = 3
    lr: float = 1e-4
    batch_size: int = 32
    weight_decay: float = 0.01
    seed: int = 0
    extract: ExtractSettings = field(default_factory=ExtractSettings)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"FinetuneSettings: epochs and batch_size must be >= 1, got "
                             f"{self.epochs} and {self.batch_size}")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError(f"FinetuneSettings: lr must be > 0 and weight_decay >= 0, got "
                             f"{self.lr} and {self.weight_decay}")

    def describe(self) -> str:
        """The `settings` column of a record."""
        return format_settings([("epochs", self.epochs), ("lr", self.lr),
                                ("batch_size", self.batch_size),
                                ("weight_decay", self.weight_decay), ("seed", self.seed)])


@dataclass
class FinetuneResult:
    """What `finetune_model` measured.

    Attributes:
        accuracy: test accuracy in [0, 1].
        train_size, test_size: items used (unreadable ones left out).
        losses: mean training loss of each epoch.
        failures: `(item, reason)` of every unreadable item.
    """

    accuracy: float
    train_size: int
    test_size: int
    losses: list[float]
    failures: list[tuple[str, str]]


def _loader(model: LoadedModel, split: Split, batch_size: int, *, shuffle: bool,
            generator: torch.Generator | None, workers: int,
            drop_last: bool = False) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        ItemDataset(split, model.transform), batch_size=batch_size, shuffle=shuffle,
        generator=generator, num_workers=workers, collate_fn=CollateItems(model.collate),
        drop_last=drop_last, pin_memory=model.device.type == "cuda")


def finetune_model(model: LoadedModel, source: DataSource,
                   settings: FinetuneSettings | None = None) -> FinetuneResult:
    """Train `model` with a new linear head on `source.train`; test accuracy on `source.test`.

    The model's weights change in place (load a fresh copy per dataset).

    Raises:
        ValueError: the source has no test split, or no item of a split can be read.
    """
    settings = settings or FinetuneSettings()
    if source.test is None:
        raise ValueError(f"{source.location}: no test split; the finetune protocol measures "
                         "accuracy on it (train/ and test/ folders, a split column, a test "
                         "split in datasets)")
    device, workers = model.device, settings.extract.workers
    use_amp = settings.extract.amp and device.type == "cuda"
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    train, failures = source.train, []
    # BatchNorm cannot train on a batch of one: drop a last partial batch when there is a choice
    loader = _loader(model, train, settings.batch_size, shuffle=True, generator=generator,
                     workers=workers, drop_last=len(train) > settings.batch_size)
    head: nn.Linear | None = None
    optimizer: torch.optim.Optimizer | None = None
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    autocast = (partial(torch.autocast, "cuda", dtype=torch.float16) if use_amp
                else contextlib.nullcontext)
    losses = []
    for epoch in range(settings.epochs):
        total, count = 0.0, 0
        for index, batch, failed in loader:
            if epoch == 0:
                failures.extend((train.describe(i), reason) for i, reason in failed)
            if batch is None:
                continue
            if head is None:  # the feature dimension, and the head found in eval mode
                model.eval()
                with torch.no_grad():
                    dim = model.features(batch).shape[1]
                head = nn.Linear(dim, source.num_classes).to(device)
                optimizer = torch.optim.AdamW([*model.parameters(), *head.parameters()],
                                              lr=settings.lr,
                                              weight_decay=settings.weight_decay)
            assert optimizer is not None
            model.train()
            head.train()
            labels = torch.as_tensor(train.labels[index], device=device)
            with autocast():
                logits = head(model.features(batch))                       # [b, C]
            loss = nn.functional.cross_entropy(logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total += float(loss.detach()) * len(index)
            count += len(index)
        if head is None:
            raise ValueError(f"{source.location}: no item of the train split could be read "
                             f"({len(failures)} failure(s); first: "
                             f"{failures[0][1] if failures else 'none'})")
        losses.append(total / max(count, 1))
    assert head is not None
    model.eval()
    head.eval()
    correct = seen = 0
    with torch.no_grad(), autocast():
        for index, batch, failed in _loader(model, source.test, settings.batch_size,
                                            shuffle=False, generator=None, workers=workers):
            failures.extend((source.test.describe(i), reason) for i, reason in failed)
            if batch is None:
                continue
            predicted = head(model.features(batch)).argmax(1).cpu().numpy()
            correct += int((predicted == source.test.labels[index]).sum())
            seen += len(index)
    if seen == 0:
        raise ValueError(f"{source.location}: no item of the test split could be read")
    return FinetuneResult(correct / seen, count, seen, losses, failures)


@dataclass(frozen=True)
class _Task:
    spec: str
    name: str
    source: str
    dataset: str


def _finetune_pair(task: _Task, settings: FinetuneSettings
                   ) -> tuple[str, str, tuple | None, list[tuple[str, str, str, str, str]]]:
    """One pair (runs in a `tpred.parallel` worker): (model, dataset, record row or None,
    error rows); every failure becomes an error row."""
    start = time.perf_counter()
    ext = settings.extract
    try:
        source = open_source(task.source, ext.source, name=task.dataset)
        model = load_model(task.spec, pretrained=ext.pretrained, layer=ext.layer,
                           device=ext.device, trust=ext.trust, image_size=ext.image_size,
                           seed=ext.seed, name=task.name)
        if model.modality != source.modality:
            return task.name, task.dataset, None, []
        result = finetune_model(model, source, settings)
    # the task boundary: one model's failure (user models raise anything) is recorded with
    # its type and message, and the other pairs go on
    except Exception as err:  # noqa: BLE001
        return task.name, task.dataset, None, [(task.name, task.dataset, PROTOCOL, "",
                                                f"{type(err).__name__}: {err}")]
    row = (task.name, task.dataset, round(result.accuracy, 6), PROTOCOL, result.train_size,
           result.test_size, round(time.perf_counter() - start, 3), settings.describe())
    errors = [(task.name, task.dataset, PROTOCOL, item, reason)
              for item, reason in result.failures]
    return task.name, task.dataset, row, errors


def finetune(models: Sequence[str], sources: Sequence[str | Path], out_csv: str | Path, *,
             names: Sequence[str] | None = None, dataset_names: Sequence[str] | None = None,
             settings: FinetuneSettings | None = None, backend: str = "loky", jobs: int = 1,
             address: str | None = None, retries: int = 2, overwrite: bool = False,
             progress: bool = True) -> dict[str, int]:
    """`finetune` records of every (model, source) pair of the same modality into `out_csv`.

    Args:
        models, sources, names, dataset_names: as `tpred.extract.extract`.
        settings: the budget and how models/data are loaded.
        backend, jobs, address, retries: `tpred.parallel.run_tasks` options (one task per pair).
        overwrite: redo pairs already recorded under `finetune`.
        progress: a tqdm bar over pairs.

    Returns:
        Counts: `pairs`, `skipped`, `done`, `other_modality`, `failed`.

    Raises:
        ValueError: an unknown spec prefix, repeated ids, bad execution options, an `out_csv`
            that is not a records file.
    """
    settings = settings or FinetuneSettings()
    model_ids = check_names(list(models), names)
    dataset_ids = (list(dataset_names) if dataset_names is not None else
                   [source_name(str(s)) for s in sources])
    if len(dataset_ids) != len(sources) or len(set(dataset_ids)) != len(dataset_ids):
        raise ValueError(f"dataset ids must be one per source and distinct, got {dataset_ids}")
    check_options(backend, jobs, address, retries)
    existing = read_records_table(out_csv)
    done = set() if overwrite else done_pairs(existing, PROTOCOL)
    tasks = [_Task(spec, name, str(src), dataset)
             for spec, name in zip(models, model_ids, strict=True)
             for src, dataset in zip(sources, dataset_ids, strict=True)
             if (name, dataset) not in done]
    counts = {"pairs": len(model_ids) * len(dataset_ids),
              "skipped": len(model_ids) * len(dataset_ids) - len(tasks), "done": 0,
              "other_modality": 0, "failed": 0}
    with RecordsWriter(out_csv, PROTOCOL, replace=overwrite) as writer:
        for model, dataset, row, errors in _results(tasks, settings, backend=backend, jobs=jobs,
                                                    address=address, retries=retries,
                                                    progress=progress):
            writer.add(model, dataset, row, errors)
            key = "done" if row is not None else "failed" if errors else "other_modality"
            counts[key] += 1
    return counts


def _results(tasks: list[_Task], settings: FinetuneSettings, **options
             ) -> Iterator[tuple[str, str, tuple | None, list]]:
    for outcome in run_tasks(partial(_finetune_pair, settings=settings), tasks,
                             desc="fine-tuning", **options):
        if outcome.ok:
            yield outcome.result
        else:
            task = outcome.task
            yield task.name, task.dataset, None, [(task.name, task.dataset, PROTOCOL, "",
                                                   str(outcome.error))]

