"""Build the embedded default zoo from `sklearn.datasets.load_digits` and small PyTorch networks.

The recipe follows DomainNet-270 (../shared/benchmarks/domainnet270/README.md), shrunk to run on a
CPU in minutes:

1. The 1,797 digits are split once, stratified, into a source pool and a target pool (disjoint
   images); the source pool is split again into source-train and source-test.
2. Source models of three families (MLP, small CNN, tiny residual CNN), several widths and depths,
   are trained on different source tasks: a domain (or all of them), a class subset, an epoch
   budget. Their metadata is measured: parameters counted, FLOPs by `torch.utils.flop_counter`,
   feature dimension, source-test accuracy.
3. Target datasets are domain × number of classes × samples per class × label division, drawn from
   the target pool.
4. For every (model, target): frozen penultimate features and source-head probabilities; a
   logistic-regression head fitted on the target's train part, test accuracy averaged over
   `resamplings` train/test draws → records; every `tpred.scores` metric on the train part of the
   first draw → scores (undefined ones → scores.errors.csv with the reason). The train-part
   arrays are kept as `<features>/<model>/<dataset>.npz` (`features`, `labels`, `probs`), the
   layout `python -m tpred.score` reads.
5. The trained source networks are kept as `<weights>/<model>.safetensors` (git-ignored like
   the features) and the plan and seed as `zoo.json`, so `tpred.zoo.hub.load_model
   ("digits:<model>")` re-creates a network without re-running the build.

Everything is deterministic for a seed: torch runs single-threaded with deterministic algorithms,
BLAS is limited to one thread, every random draw comes from a generator keyed by the seed and a
name.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits
from torch import nn
from tqdm.auto import tqdm

from tpred.extract.run import extract_tensors, write_pair
from tpred.finetune.probe import linear_probe
from tpred.zoo.domains import DOMAINS, apply_domain
from tpred.zoo.networks import as_loaded_model, count_flops, count_parameters, make_network
from tpred.zoo.targets import CLASS_NAMES, DIVISIONS, TargetSpec, make_targets

log = logging.getLogger(__name__)

ALL_CLASSES = tuple(range(10))
MIXED = "mixed"  # source domain of a model trained on every domain at once


@dataclass(frozen=True)
class SourceSpec:
    """One source model and the task it is pre-trained on.

    Args:
        model: id.
        family: `mlp`, `cnn` or `resnet` (see `tpred.zoo.networks.make_network`).
        size: the family's shape parameters.
        domain: source domain, a key of `DOMAINS` or `mixed` (every domain).
        classes: source digits.
        epochs: training budget (passes over the source-train images); 0 = untrained.
        lr: Adam learning rate.
    """

    model: str
    family: str
    size: tuple[int, ...]
    domain: str
    classes: tuple[int, ...] = ALL_CLASSES
    epochs: int = 20
    lr: float = 3e-3

    def __post_init__(self) -> None:
        if self.domain != MIXED and self.domain not in DOMAINS:
            raise ValueError(f"SourceSpec {self.model!r}: domain must be one of "
                             f"{sorted(DOMAINS) + [MIXED]}, got {self.domain!r}")
        if len(self.classes) < 2 or not set(self.classes) <= set(ALL_CLASSES):
            raise ValueError(f"SourceSpec {self.model!r}: classes must be at least 2 distinct "
                             f"digits in 0..9, got {self.classes}")
        if self.epochs < 0:
            raise ValueError(f"SourceSpec {self.model!r}: epochs must be >= 0, got {self.epochs}")

    @property
    def pretrain_dataset(self) -> str:
        """A short text naming the source task, e.g. `digits-rotated (10 classes, 20 epochs)`."""
        return (f"digits-{self.domain} ({len(self.classes)} classes: "
                f"{', '.join(CLASS_NAMES[c] for c in self.classes)}; {self.epochs} epochs)")


@dataclass(frozen=True)
class ZooPlan:
    """Everything that defines a zoo except the seed.

    Args:
        sources: the source models.
        domains: target domains.
        num_classes, samples_per_class, divisions: the target grid (see `make_targets`).
        resamplings: train/test draws per target; the recorded accuracy is their mean.
        target_fraction: share of the 1,797 images in the target pool.
        source_test_fraction: share of the source pool held out to measure source accuracy.
        batch_size: source training batch size.
    """

    sources: tuple[SourceSpec, ...]
    domains: tuple[str, ...]
    num_classes: tuple[int, ...] = (2, 4, 8)
    samples_per_class: tuple[int, ...] = (5, 10, 20)
    divisions: tuple[str, ...] = DIVISIONS
    resamplings: int = 3
    target_fraction: float = 0.5
    source_test_fraction: float = 0.25
    batch_size: int = 64

    def __post_init__(self) -> None:
        if bad := sorted(set(self.domains) - set(DOMAINS)):
            raise ValueError(f"ZooPlan.domains: unknown domain(s) {bad}; valid: {sorted(DOMAINS)}")
        if len({s.model for s in self.sources}) != len(self.sources):
            raise ValueError("ZooPlan.sources: model ids must be unique")
        if self.resamplings < 1:
            raise ValueError(f"ZooPlan.resamplings must be >= 1, got {self.resamplings}")

    def targets(self, seed: int) -> list[TargetSpec]:
        return make_targets(self.domains, self.num_classes, self.samples_per_class,
                            self.divisions, seed=seed)


def default_plan(*, small: bool = False) -> ZooPlan:
    """The zoo of `python -m tpred.zoo build` (`small`: 4 models × 16 targets, for tests)."""
    if small:
        return ZooPlan(
            sources=(
                SourceSpec("mlp-s-original", "mlp", (32,), "original", epochs=5),
                SourceSpec("cnn-s-inverted", "cnn", (4, 8, 16), "inverted", epochs=5),
                SourceSpec("resnet-xs-original-04", "resnet", (8, 1), "original",
                           classes=(0, 1, 2, 3, 4), epochs=3),
                SourceSpec("mlp-weak", "mlp", (4,), "original", epochs=1, lr=1e-3),
            ),
            domains=("original", "inverted"), num_classes=(2, 4), samples_per_class=(5, 10),
            divisions=("a", "c"))
    low, high, even = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9), (0, 2, 4, 6, 8)
    return ZooPlan(
        sources=(
            SourceSpec("mlp-s-original", "mlp", (64,), "original"),
            SourceSpec("mlp-l-original", "mlp", (256, 256), "original"),
            SourceSpec("mlp-m-rotated", "mlp", (128, 128), "rotated"),
            SourceSpec("mlp-m-inverted", "mlp", (128,), "inverted"),
            SourceSpec("mlp-xs-weak", "mlp", (8,), "original", epochs=1, lr=1e-3),
            SourceSpec("cnn-s-original", "cnn", (8, 16, 32), "original"),
            SourceSpec("cnn-s-original-short", "cnn", (8, 16, 32), "original", epochs=2),
            SourceSpec("cnn-m-noisy", "cnn", (16, 32, 64), "noisy"),
            SourceSpec("cnn-m-original-low", "cnn", (16, 32, 64), "original", classes=low),
            SourceSpec("cnn-m-original-high", "cnn", (16, 32, 64), "original", classes=high),
            SourceSpec("cnn-l-blurred", "cnn", (32, 64, 128), "blurred"),
            SourceSpec("cnn-m-shifted-even", "cnn", (16, 32, 64), "shifted", classes=even),
            SourceSpec("cnn-m-untrained", "cnn", (16, 32, 64), "original", epochs=0),
            SourceSpec("resnet-s-original", "resnet", (16, 1), "original"),
            SourceSpec("resnet-m-rotated", "resnet", (24, 2), "rotated"),
            SourceSpec("resnet-m-inverted-low", "resnet", (24, 2), "inverted", classes=low),
            SourceSpec("resnet-s-noisy-pair", "resnet", (16, 1), "noisy", classes=(3, 8)),
            SourceSpec("resnet-l-mixed", "resnet", (32, 2), MIXED, epochs=5),
        ),
        domains=tuple(DOMAINS))


# ------------------------------------------------------------------------------ determinism
@contextlib.contextmanager
def deterministic(num_threads: int = 1) -> Iterator[None]:
    """Fix torch threads, deterministic algorithms and BLAS threads; restore them afterwards."""
    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(num_threads)
    torch.use_deterministic_algorithms(True)
    try:
        with threadpool_limits(limits=num_threads):
            yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det)


def _seed(*keys: int | str) -> int:
    """A 32-bit seed from ints and strings, stable across processes (no `hash()`)."""
    entropy = [k if isinstance(k, int) else int.from_bytes(k.encode(), "little") for k in keys]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


# ------------------------------------------------------------------------------- the steps
@dataclass
class _Pools:
    """The digits in every domain, and the fixed index splits."""

    images: dict[str, np.ndarray]      # domain -> [1797, 8, 8] float32
    y: np.ndarray                      # [1797]
    source_train: np.ndarray           # indices
    source_test: np.ndarray
    target: np.ndarray


def _make_pools(plan: ZooPlan, seed: int) -> _Pools:
    digits = load_digits()
    images = digits.images / 16.0                                          # [1797, 8, 8]
    y = digits.target.astype(np.int64)
    index = np.arange(len(y))
    source, target = train_test_split(index, test_size=plan.target_fraction, stratify=y,
                                      random_state=_seed(seed, "pools"))
    source_train, source_test = train_test_split(
        source, test_size=plan.source_test_fraction, stratify=y[source],
        random_state=_seed(seed, "source-test"))
    domains = sorted(set(plan.domains) | {s.domain for s in plan.sources if s.domain != MIXED}
                     | (set(DOMAINS) if any(s.domain == MIXED for s in plan.sources) else set()))
    rendered = {d: apply_domain(images, d, seed=seed) for d in domains}
    return _Pools(rendered, y, np.sort(source_train), np.sort(source_test), np.sort(target))


def _source_data(spec: SourceSpec, pools: _Pools, index: np.ndarray):
    """Images [n, 1, 8, 8] and labels 0..Cs-1 [n] of a source task on the images `index`."""
    index = index[np.isin(pools.y[index], spec.classes)]
    domains = sorted(DOMAINS) if spec.domain == MIXED else [spec.domain]
    x = np.concatenate([pools.images[d][index] for d in domains])[:, None]  # [n, 1, 8, 8]
    y = np.searchsorted(np.array(spec.classes), np.tile(pools.y[index], len(domains)))
    return torch.from_numpy(x), torch.from_numpy(y)


def train_source(spec: SourceSpec, pools: _Pools, *, seed: int,
                 batch_size: int = 64) -> tuple[nn.Module, float]:
    """Train one source model; return it (eval mode) and its source-test accuracy."""
    torch.manual_seed(_seed(seed, "init", spec.model))
    net = make_network(spec.family, spec.size, len(spec.classes))
    x, y = _source_data(spec, pools, pools.source_train)
    opt = torch.optim.Adam(net.parameters(), lr=spec.lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(_seed(seed, "batches", spec.model))
    net.train()
    for _ in range(spec.epochs):
        order = torch.randperm(len(y), generator=gen)
        for start in range(0, len(y), batch_size):
            batch = order[start:start + batch_size]
            opt.zero_grad()
            nn.functional.cross_entropy(net(x[batch]), y[batch]).backward()
            opt.step()
    net.eval()
    x_test, y_test = _source_data(spec, pools, pools.source_test)
    with torch.no_grad():
        accuracy = float((net(x_test).argmax(1) == y_test).double().mean())
    return net, accuracy


def _extract(net: nn.Module, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate features [N, D] and source-head softmax probabilities [N, Cs] (float32), by
    `tpred.extract` (the input of `net.head`; all N images in one batch)."""
    return extract_tensors(as_loaded_model(net), torch.from_numpy(images[:, None]))


def _draws(spec: TargetSpec, pools: _Pools, num: int, seed: int):
    """`num` train/test index draws (into the full image arrays) of a target: per class,
    `samples_per_class` train images, the rest of the target pool's images of that class test."""
    pool_y = pools.y[pools.target]
    for r in range(num):
        rng = np.random.default_rng(_seed(seed, "draw", spec.dataset, r))
        train, test = [], []
        for c in spec.classes:
            members = rng.permutation(pools.target[pool_y == c])
            train.append(members[:spec.samples_per_class])
            test.append(members[spec.samples_per_class:])
        yield np.concatenate(train), np.concatenate(test)


def dataset_row(target: TargetSpec, train_size: int, test_size: int) -> dict:
    """The `datasets.csv` row of a target."""
    return {"dataset": target.dataset, "domain": target.domain,
            "num_classes": target.num_classes, "samples_per_class": target.samples_per_class,
            "division": target.division, "labels": target.labels,
            "train_size": train_size, "test_size": test_size}


#: the target head: `tpred.finetune`'s linear probe (logistic regression, C = 1, on
#: features standardised with the train part's statistics)
fit_head = linear_probe


@dataclass
class ZooTables:
    """The tables of a built zoo (what `build_zoo` writes)."""

    models: pd.DataFrame
    datasets: pd.DataFrame
    records: pd.DataFrame
    scores: pd.DataFrame
    errors: pd.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)
    resamplings: int = 3


def build_zoo(out: str | Path, *, seed: int = 0, small: bool = False,
              plan: ZooPlan | None = None, features_dir: str | Path | None = None,
              metrics: Sequence[str] | None = None, jobs: int = 1, progress: bool = True,
              write_readme: bool = True, weights_dir: str | Path | None = None) -> ZooTables:
    """Build the digits zoo and write its tables into `out`.

    Args:
        out: folder for models.csv, datasets.csv, records.csv, scores.csv, scores.errors.csv
            and README.md (created if needed).
        seed: the one seed of every random draw.
        small: the small plan (a few models and targets; seconds) instead of the full one.
        plan: an explicit plan (overrides `small`).
        features_dir: where the `<model>/<dataset>.npz` feature files go (default
            `<out>/features`, git-ignored).
        metrics: `tpred.scores` metric names; None = every metric of `tpred.scores.METRICS`.
        jobs: parallel workers for the scores (joblib; 1 = in process).
        progress: show tqdm progress bars.
        write_readme: write `<out>/README.md` with the build's summary statistics.
        weights_dir: where the trained source networks go as `<model>.safetensors` (default
            `<out>/weights`, git-ignored; `tpred.zoo.hub` loads them, or re-trains them
            from `<out>/zoo.json` when absent).

    Returns:
        The tables written, and the seconds each step took.
    """
    from tpred.zoo.hub import save_network, write_manifest  # hub builds on this module

    out = Path(out)
    features_dir = Path(features_dir) if features_dir is not None else out / "features"
    weights_dir = Path(weights_dir) if weights_dir is not None else out / "weights"
    plan = plan if plan is not None else default_plan(small=small)
    metrics = _check_metrics(metrics)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    with deterministic():
        pools = _make_pools(plan, seed)
        targets = plan.targets(seed)

        # ---- source models
        tic = time.perf_counter()
        nets: dict[str, nn.Module] = {}
        model_rows = []
        for spec in tqdm(plan.sources, desc="source models", disable=not progress):
            net, source_acc = train_source(spec, pools, seed=seed, batch_size=plan.batch_size)
            nets[spec.model] = net
            save_network(net, spec, seed, weights_dir / f"{spec.model}.safetensors")
            model_rows.append({
                "model": spec.model,
                "architecture_family": net.family,
                "pretrain_dataset": spec.pretrain_dataset,
                "source_domain": spec.domain,
                "source_classes": ", ".join(CLASS_NAMES[c] for c in spec.classes),
                "num_source_classes": len(spec.classes),
                "epochs": spec.epochs,
                "num_parameters": count_parameters(net),
                "flops": count_flops(net),
                "feature_dim": net.feature_dim,
                "source_accuracy": round(source_acc, 6),
            })
        seconds["train"] = time.perf_counter() - tic

        # ---- features of the target pool, per model and domain
        tic = time.perf_counter()
        feats: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        for spec in plan.sources:
            for domain in plan.domains:
                feats[spec.model, domain] = _extract(nets[spec.model], pools.images[domain])
        seconds["extract"] = time.perf_counter() - tic

        # ---- heads and feature files
        tic = time.perf_counter()
        record_rows, dataset_rows = [], []
        arrays: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for target in tqdm(targets, desc="target heads", disable=not progress):
            draws = list(_draws(target, pools, plan.resamplings, seed))
            dataset_rows.append(dataset_row(target, len(draws[0][0]), len(draws[0][1])))
            for spec in plan.sources:
                f, p = feats[spec.model, target.domain]
                acc = np.mean([fit_head(f[tr], pools.y[tr], f[te], pools.y[te])
                               for tr, te in draws])
                record_rows.append({"model": spec.model, "dataset": target.dataset,
                                    "accuracy": round(float(acc), 6)})
                train = draws[0][0]
                arrays[spec.model, target.dataset] = (f[train], pools.y[train], p[train])
                write_pair(features_dir / spec.model / f"{target.dataset}.npz",
                           {"features": f[train], "labels": pools.y[train], "probs": p[train]},
                           compress=True)
        seconds["heads"] = time.perf_counter() - tic

        # ---- scores
        tic = time.perf_counter()
        scores, errors = score_pairs(arrays, metrics=metrics, seed=seed, jobs=jobs,
                                     progress=progress)
        seconds["scores"] = time.perf_counter() - tic
    seconds["total"] = time.perf_counter() - start

    written = {features_dir / m / f"{d}.npz" for m, d in arrays}
    if stale := sorted(set(features_dir.glob("*/*.npz")) - written):
        log.warning("%s: %d feature file(s) not written by this build (e.g. %s); "
                    "`python -m tpred.score --features %s` would score them too",
                    features_dir, len(stale), stale[0], features_dir)
    tables = ZooTables(pd.DataFrame(model_rows), pd.DataFrame(dataset_rows),
                       pd.DataFrame(record_rows), scores, errors, seconds, plan.resamplings)
    write_tables(tables, out)
    write_manifest(out, plan, seed)
    if write_readme:
        from tpred.zoo.report import render_readme

        readme = out / "README.md"
        readme.write_text(render_readme(tables, seed=seed, small=small, existing=readme))
    return tables


def _check_metrics(metrics: Sequence[str] | None) -> list[str]:
    """The metric names to compute (None = every `tpred.scores.METRICS` entry), checked before
    any work starts.

    Raises:
        ValueError: an unknown metric name (the message lists the valid ones), or none.
    """
    from tpred.scores import METRICS, get_metric

    names = list(METRICS) if metrics is None else list(dict.fromkeys(metrics))
    if not names:
        raise ValueError("build_zoo: metrics must name at least one tpred.scores metric")
    for name in names:
        get_metric(name)
    return names


def score_pairs(arrays: Mapping[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray]],
                *, metrics: Sequence[str], seed: int = 0, jobs: int = 1,
                progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every requested `tpred.scores` metric of every pair held in memory.

    Args:
        arrays: `{(model, dataset): (features [N, D], labels [N], probs [N, Cs])}`.
        metrics: registry names (see `tpred.scores.get_metric`).
        seed: `random_state` of the random metrics (NLEEP, NCTI).
        jobs: parallel workers of `tpred.scores.table.score_arrays`.

    Returns:
        scores `model, dataset, metric, value` (finite values only) and errors
        `model, dataset, metric, reason` (one row per pair × metric that could not be computed),
        both sorted by model, dataset, metric.
    """
    from tpred.scores.table import score_arrays

    return score_arrays(dict(arrays), list(metrics), jobs=jobs, random_state=seed,
                        progress=progress)


def write_tables(tables: ZooTables, out: Path) -> None:
    """Write the five CSVs of a zoo into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    tables.models.to_csv(out / "models.csv", index=False)
    tables.datasets.to_csv(out / "datasets.csv", index=False)
    tables.records.to_csv(out / "records.csv", index=False)
    tables.scores.to_csv(out / "scores.csv", index=False)
    tables.errors.to_csv(out / "scores.errors.csv", index=False)
