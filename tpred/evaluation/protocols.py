"""Evaluation protocols: which recorded pairs a predictor may train on, and which it is scored on.

Every protocol turns a `Zoo` and a seed into a list of `Split`s (one per fold). A split's `test`
pairs all have a record; `train` and `test` are disjoint; together they are the zoo's known pairs.

- `random-<r>` (e.g. `random-0.6`): hide a fraction r of the known pairs (one fold). The config
  entry `random` expands to one protocol per `ProtocolConfig.random_fractions`
  (`expand_protocols`).
- `cold-dataset`: k-fold over the datasets that have records (`num_folds`); a fold's test pairs
  are every record of its datasets, which appear in no training pair.
- `cold-model`: the same over models; leave-one-model-out when at most `max_leave_one_out`
  models have records (then the folds do not depend on the seed), k-fold otherwise.
- `leave-domain-out`: one fold per value of `datasets[domain_column]` (sorted; seed-independent).
  A dataset whose domain is missing is never held out (it stays in every training set).
- `paper`: the released SCG4Trf script's masks, replayed from `torch` (see `paper_known_mask`).

A dataset (or model) without any record is simply never tested. Every split has at least one
training and one test pair (else ValueError); `random` may hide every record of some node, which
is then cold-start in that split. Randomness comes only from
`np.random.default_rng(seed)`, except `paper`, which must replay the script's `torch` draws.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from tpred.config import ProtocolConfig
from tpred.data.zoo import PAIR, Zoo

#: protocol names `make_splits` accepts besides `random-<r>`
FIXED_PROTOCOLS = ("paper", "cold-dataset", "cold-model", "leave-domain-out")

#: the released script's known-cell ratios of the 10 column groups (`missing_ratios` there,
#: although the cells it picks are the *known* ones)
PAPER_RATIOS = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0)


@dataclass(frozen=True, eq=False)
class Split:
    """One fold of one protocol and seed.

    Attributes:
        protocol: the protocol's name, e.g. `cold-dataset`, `random-0.6`, `paper`.
        seed: the seed it was drawn with.
        fold: 0-based fold number (0 for one-fold protocols).
        train: pairs (`model, dataset`) whose records a predictor may use.
        test: pairs it is scored on; every one has a record; disjoint from `train`.
        context: protocol details. Every protocol but `random`: `held_out` (the ids, or the
            domain value, held out). `paper`: `models`, `datasets` (the original matrix's row and
            column order) and `known_mask` (bool [M, T] in that order; True = train cell).

    (`eq=False`: DataFrames have no truth value, so splits compare by identity.)
    """

    protocol: str
    seed: int
    fold: int
    train: pd.DataFrame
    test: pd.DataFrame
    context: dict[str, Any] = field(default_factory=dict)


def expand_protocols(names: tuple[str, ...] | list[str], cfg: ProtocolConfig) -> list[str]:
    """`random` becomes `random-<r>` for each r in `cfg.random_fractions`; others pass through.

    Raises:
        ValueError: an unknown protocol name (the message lists the valid ones).
    """
    out: list[str] = []
    for name in names:
        if name == "random":
            out += [f"random-{r:g}" for r in cfg.random_fractions]
        else:
            _parse(name)
            out.append(name)
    return list(dict.fromkeys(out))


def make_splits(name: str, zoo: Zoo, seed: int, cfg: ProtocolConfig) -> list[Split]:
    """The splits (folds) of protocol `name` for one seed.

    Args:
        name: `random-<r>` (0 < r < 1), `cold-dataset`, `cold-model`, `leave-domain-out` or
            `paper` (use `expand_protocols` to turn the config's `random` into `random-<r>`).
        zoo: the zoo; only its known pairs (records) are split.
        seed: the seed; `np.random.default_rng(seed)` (or, for `paper`, the script's torch
            seed).
        cfg: protocol options (folds, leave-one-out limit, domain column).

    Raises:
        ValueError: unknown name; a zoo too small for the protocol (fewer than 2 records, fewer
            held-out units than folds, one domain); missing domain column; `paper` on a zoo
            whose records are not the full matrix.
    """
    protocol, fraction = _parse(name)
    if protocol == "random":
        return [_random_split(name, zoo, seed, fraction)]
    if protocol == "paper":
        return [paper_split(zoo, seed)]
    known = zoo.known_pairs().reset_index(drop=True)
    if protocol == "cold-dataset":
        units = _with_records(zoo.dataset_ids, known["dataset"])
        groups = _kfold(units, cfg.num_folds, seed, what="cold-dataset: datasets with records")
        return _node_splits(name, seed, known, "dataset", groups)
    if protocol == "cold-model":
        units = _with_records(zoo.model_ids, known["model"])
        if len(units) <= cfg.max_leave_one_out:
            if len(units) < 2:
                raise ValueError(f"cold-model needs at least 2 models with records, got "
                                 f"{len(units)}")
            groups = [[u] for u in units]          # leave-one-model-out: no randomness
        else:
            groups = _kfold(units, cfg.num_folds, seed, what="cold-model: models with records")
        return _node_splits(name, seed, known, "model", groups)
    # leave-domain-out
    col = cfg.domain_column
    if col not in zoo.datasets.columns:
        raise ValueError(f"leave-domain-out: the datasets table has no column {col!r} "
                         f"(ProtocolConfig.domain_column); its columns are "
                         f"{list(zoo.datasets.columns)}")
    units = _with_records(zoo.dataset_ids, known["dataset"])
    domain = zoo.datasets[col].reindex(units)
    values = sorted(domain.dropna().astype(str).unique())
    if len(values) < 2:
        raise ValueError(f"leave-domain-out needs at least 2 values of datasets column {col!r} "
                         f"among datasets with records, got {values}")
    groups = [list(domain.index[domain.astype(str).eq(v) & domain.notna()]) for v in values]
    return _node_splits(name, seed, known, "dataset", groups,
                        [{"domain": value} for value in values])


# ------------------------------------------------------------------------------------- paper
def paper_known_mask(seed: int, num_rows: int = 10, num_cols: int = 270) -> np.ndarray:
    """The known-cell mask of the released SCG4Trf script, replaying its `torch` draws verbatim.

    Reproduces `generate_mask_sets(seed)` of `scgat.py` in davechenxy/ModelRecommendation
    (written from reading it, not copied), draw for draw: seed torch's CPU generator with
    `seed` (a private `torch.Generator`, which gives the same stream as `torch.manual_seed(seed)`
    without touching the global state), then draw mask sets one after another; each set is
    `randperm(num_cols)` (a column shuffle), then for group i = 0..9 (shuffled positions
    `int(num_cols * 0.1 * i)` to `int(num_cols * 0.1 * (i + 1))`, the script's float expression)
    and each column in it, `randperm(num_rows)[:int(num_rows * r_i)]` with r = 0.9, 0.8, ..., 0.1,
    0 — the rows of its known cells (a permutation is drawn even for r = 0, as in the script).
    The script draws 10 sets and uses set number `seed`; the sets after it do not change it, so
    `seed + 1` sets are drawn (a seed >= 10 continues the same stream; the script has no such
    seed).

    Generalisation: the script is written for 10 × 270; any `num_rows` and `num_cols` >= 10
    go through the same expressions (group bounds and known counts truncated as there).

    Shapes: returns bool [num_rows, num_cols]; True = known (training) cell; rows and columns
    in the original matrix's order.
    """
    if num_rows < 1 or num_cols < len(PAPER_RATIOS):
        raise ValueError(f"paper_known_mask: needs num_rows >= 1 and num_cols >= "
                         f"{len(PAPER_RATIOS)}, got {num_rows} x {num_cols}")
    if seed < 0:
        raise ValueError(f"paper_known_mask: seed must be >= 0, got {seed}")
    gen = torch.Generator().manual_seed(seed)
    for _ in range(seed + 1):
        mask = torch.zeros(num_rows, num_cols, dtype=torch.bool)                # [M, T]
        columns = torch.randperm(num_cols, generator=gen)
        for i, ratio in enumerate(PAPER_RATIOS):
            start, end = int(num_cols * 0.1 * i), int(num_cols * 0.1 * (i + 1))
            num_known = int(num_rows * ratio)
            for position in range(start, end):
                rows = torch.randperm(num_rows, generator=gen)[:num_known]
                mask[rows, columns[position]] = True
    return mask.numpy()


def paper_split(zoo: Zoo, seed: int) -> Split:
    """The `paper` protocol's split for one seed: known cells train, every other cell is tested.

    The mask is laid over the matrix with rows = models and columns = datasets in the order in
    which they first appear in `zoo.records` — the original wide matrix's row and column order
    when the records were read from it, or from a long file written from it row by row (as
    DomainNet-270's `records.csv`, whose order is `records_wide_original.csv`'s).

    Raises:
        ValueError: the records are not the full models × datasets matrix.
    """
    records = zoo.records
    models = pd.unique(records["model"])
    datasets = pd.unique(records["dataset"])
    shape = (zoo.num_models, zoo.num_datasets)
    if len(records) != zoo.num_models * zoo.num_datasets:
        raise ValueError(f"paper protocol needs the full {shape[0]} x {shape[1]} records matrix "
                         f"(every model on every dataset), got {len(records)} of "
                         f"{shape[0] * shape[1]} pairs")
    known = paper_known_mask(seed, len(models), len(datasets))               # [M, T]
    grid = pd.DataFrame({"model": np.repeat(models, len(datasets)),
                         "dataset": np.tile(datasets, len(models))})         # row-major [M*T]
    flat = known.ravel()
    return Split("paper", seed, 0, grid[flat].reset_index(drop=True),
                 grid[~flat].reset_index(drop=True),
                 {"models": tuple(models), "datasets": tuple(datasets), "known_mask": known})


# ----------------------------------------------------------------------------------- helpers
def _parse(name: str) -> tuple[str, float]:
    """(protocol, hidden fraction) of a protocol name; the fraction is NaN but for random."""
    if name in FIXED_PROTOCOLS:
        return name, float("nan")
    if name.startswith("random-"):
        try:
            fraction = float(name[len("random-"):])
        except ValueError:
            fraction = float("nan")
        if 0 < fraction < 1:
            return "random", fraction
        raise ValueError(f"protocol {name!r}: random-<r> needs a fraction 0 < r < 1")
    raise ValueError(f"Could not resolve protocol {name!r} among choices "
                     f"{['random', 'random-<r>', *FIXED_PROTOCOLS]} ('random' must be expanded "
                     f"with expand_protocols first)")


def _random_split(name: str, zoo: Zoo, seed: int, fraction: float) -> Split:
    known = zoo.known_pairs().reset_index(drop=True)
    num_test = int(round(fraction * len(known)))
    if not 0 < num_test < len(known):
        raise ValueError(f"{name}: hiding {fraction:g} of {len(known)} known pairs leaves "
                         f"{num_test} test and {len(known) - num_test} training pairs; both "
                         f"must be >= 1")
    test = np.zeros(len(known), dtype=bool)
    test[np.random.default_rng(seed).permutation(len(known))[:num_test]] = True
    return Split(name, seed, 0, known[~test].reset_index(drop=True),
                 known[test].reset_index(drop=True))


def _with_records(ids: pd.Index, used: pd.Series) -> list[str]:
    """`ids` (table order) that appear in `used`: the units a protocol can hold out."""
    return list(ids[ids.isin(used)])


def _kfold(units: list[str], num_folds: int, seed: int, *, what: str) -> list[list[str]]:
    """Shuffle `units` with the seed and cut them into `num_folds` groups (sizes differ <= 1)."""
    if len(units) < num_folds:
        raise ValueError(f"{what}: {len(units)} is fewer than num_folds={num_folds}; lower "
                         f"ProtocolConfig.num_folds")
    order = np.random.default_rng(seed).permutation(len(units))
    return [[units[i] for i in sorted(part)] for part in np.array_split(order, num_folds)]


def _node_splits(name: str, seed: int, known: pd.DataFrame, column: str,
                 groups: list[list[str]], extra: list[dict] | None = None) -> list[Split]:
    """One split per group: the group's ids in `column` are held out with all their records."""
    splits = []
    for fold, group in enumerate(groups):
        test = known[column].isin(group).to_numpy()
        context = {"held_out": tuple(group), **(extra[fold] if extra else {})}
        splits.append(Split(name, seed, fold, known[~test][PAIR].reset_index(drop=True),
                            known[test][PAIR].reset_index(drop=True), context))
    return splits
