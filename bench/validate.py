"""Inner validation: compare predictor settings on splits carved from *training* pairs only.

    python bench/validate.py --config configs/domainnet270.yaml \
        --outer cold-dataset random-0.5 --outer-seeds 0 --inner cold-dataset random-0.5 \
        --methods additive knn gnn --variant base: --variant k10:gnn.neighbors=10

This is how tpred chooses a design or a hyper-parameter without looking at a test split. For
each outer split (protocol and seed as in `tpred.train`), only its *training* records are kept:
they form an inner zoo (same metadata and scores, fewer records), and the inner protocols split
that zoo again. Every method and variant is fitted on inner training pairs and scored on inner
held-out pairs; the outer test pairs are never fitted, predicted or scored. Printed: the mean ±
std over outer splits of each inner metric, per inner protocol, method and variant.

A variant is `name:key=value[;key=value...]` (`--set` syntax; `name:` alone is the config as is);
variants apply to the `--tune` methods, the others run once as configured.

`--blank b` validates on an incomplete zoo: before the splits, each numeric and categorical
metadata cell of a feature column is blanked with probability b, as `bench_missing.py` does, with
a mask drawn per outer seed from `--blank-seed` + that seed (not the masks `bench_missing.py`
draws from the seed alone, so a choice made here is not made on the outer bench's zoo).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from bench_missing import degrade  # bench/ is the script's folder, so on sys.path
from tqdm.auto import tqdm

from tpred.data import load_zoo
from tpred.data.zoo import Zoo
from tpred.errors import UndefinedMetricWarning
from tpred.evaluation.metrics import summarize
from tpred.evaluation.protocols import make_splits
from tpred.models import make_predictor
from tpred.train import REPO_ROOT, load_config

METRICS = ["spearman", "weighted_tau", "top1_regret", "rmse"]


def inner_zoo(zoo: Zoo, train: pd.DataFrame) -> Zoo:
    """`zoo` with only the records of `train` (metadata and scores unchanged)."""
    keep = pd.MultiIndex.from_frame(zoo.records[["model", "dataset"]]).isin(
        pd.MultiIndex.from_frame(train[["model", "dataset"]]))
    return Zoo(zoo.models, zoo.datasets, zoo.records[keep].reset_index(drop=True), zoo.scores)


def inner_metrics(frame: pd.DataFrame) -> dict[str, float]:
    """`METRICS` of predictions (`summarize`'s columns), without its warnings about datasets
    whose accuracies are all equal (an inner split of a small zoo has some)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        values = summarize(frame)
    return {m: values[m] for m in METRICS}


def break_ties(frame: pd.DataFrame, order: np.ndarray) -> np.ndarray:
    """`frame.predicted` [P] with each dataset's exactly equal predictions ordered by `order`
    [P] (higher first), every other order kept: a tied group gets offsets below the gap to
    the next distinct prediction of its dataset."""
    out = frame["predicted"].to_numpy().astype(np.float64).copy()
    for _, idx in frame.groupby("dataset", sort=False).indices.items():
        values = out[idx]
        distinct = np.unique(values)
        if len(distinct) == len(values):
            continue
        gap = np.diff(distinct).min() if len(distinct) > 1 else 1.0
        step = min(gap, 1e-6) / (len(values) + 1)
        for v in distinct:
            tied = idx[values == v]
            if len(tied) > 1:
                ranks = np.argsort(np.argsort(order[tied], kind="stable"), kind="stable")
                out[tied] = v - step * (len(tied) - 1 - ranks)
    return out


def parse_variant(text: str) -> tuple[str, list[str]]:
    name, _, sets = text.partition(":")
    return name, [s for s in sets.split(";") if s.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=REPO_ROOT / "configs" / "domainnet270.yaml")
    parser.add_argument("--outer", nargs="+", default=["cold-dataset", "random-0.5"])
    parser.add_argument("--outer-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--max-outer-folds", type=int, default=2,
                        help="outer folds used per protocol and seed (the first ones)")
    parser.add_argument("--inner", nargs="+", default=["cold-dataset", "random-0.5"])
    parser.add_argument("--inner-seed", type=int, default=100)
    parser.add_argument("--methods", nargs="+", default=["additive", "knn", "gnn"])
    parser.add_argument("--tune", nargs="+", default=["gnn"],
                        help="methods the variants apply to (the others run once, as configured)")
    parser.add_argument("--variant", action="append", default=None,
                        help="name:key=value;key=value (repeatable); default: the config as is")
    parser.add_argument("--blend", type=float, nargs="*", default=[],
                        help="also score (1 - w) gnn + w knn for each w, from the gnn's and "
                             "knn's predictions of the same inner splits (a blend tried for "
                             "issue 12; bench/README.md)")
    parser.add_argument("--tie-break", action="store_true",
                        help="also score the gnn with its exact ties within a dataset (e.g. "
                             "several models clipped to 1) ordered by knn's predictions of the "
                             "same inner splits (tried for issue 12; bench/README.md)")
    parser.add_argument("--blank", type=float, default=0.0,
                        help="share of metadata cells blanked before the splits (default 0)")
    parser.add_argument("--blank-seed", type=int, default=1000,
                        help="the blank mask of outer seed s is drawn from blank-seed + s")
    parser.add_argument("--out", type=Path, default=None, help="CSV of every inner result")
    args = parser.parse_args()
    base = load_config(args.config)
    zoo = load_zoo(base.data, REPO_ROOT, model_features=base.model_features,
                   dataset_features=base.dataset_features)
    variants = [parse_variant(v) for v in (args.variant or ["config:"])]
    outer = [(p, s, split) for p in args.outer for s in args.outer_seeds
             for split in make_splits(p, zoo, s, base.protocol)[:args.max_outer_folds]]
    # per outer seed: the zoo, or with `--blank` the same records (so the same outer splits)
    # with metadata blanked
    zoos = {s: degrade(zoo, base, args.blank, 0.0, args.blank_seed + s) if args.blank else zoo
            for s in args.outer_seeds}
    jobs = [(o, ip, m, v) for o in outer for ip in args.inner for m in args.methods
            for v in (variants if m in args.tune else [("-", [])])]
    rows = []
    kept: dict[tuple, pd.DataFrame] = {}  # (outer, inner, method, variant) -> predictions

    def add_row(key: tuple, method: str, vname: str, frame: pd.DataFrame, seconds: float):
        protocol, seed, fold, inner_protocol = key
        rows.append({"outer": protocol, "seed": seed, "fold": fold,
                     "inner": inner_protocol, "method": method, "variant": vname,
                     "seconds": seconds, **inner_metrics(frame)})

    for (protocol, seed, split), inner_protocol, method, (vname, sets) in tqdm(
            jobs, desc="validate", unit="fit-set"):
        cfg = base
        for s in sets:
            cfg = cfg.override(s)
        izoo = inner_zoo(zoos[seed], split.train)
        frames, start = [], time.perf_counter()
        for inner in make_splits(inner_protocol, izoo, args.inner_seed, cfg.protocol):
            predictor = make_predictor(method, cfg, seed).fit(izoo, inner.train)
            frames.append(inner.test.assign(true=izoo.accuracy(inner.test),
                                            predicted=predictor.predict(inner.test)))
        key = (protocol, seed, split.fold, inner_protocol)
        frame = pd.concat(frames, ignore_index=True)
        add_row(key, method, vname, frame, time.perf_counter() - start)
        if (args.blend or args.tie_break) and method in ("gnn", "knn"):
            kept[(*key, method, vname)] = frame
    for (*key, method, vname), frame in kept.items():
        if method != "gnn" or (near := kept.get((*key, "knn", "-"))) is None:
            continue
        assert (frame[["model", "dataset"]].to_numpy() == near[["model", "dataset"]]
                .to_numpy()).all(), "gnn and knn predicted different inner splits"
        for w in args.blend:
            mixed = frame.assign(predicted=np.clip(
                (1 - w) * frame["predicted"].to_numpy() + w * near["predicted"].to_numpy(),
                0.0, 1.0))
            add_row(tuple(key), f"gnn+knn@{w:g}", vname, mixed, 0.0)
        if args.tie_break:
            add_row(tuple(key), "gnn|knn-ties", vname,
                    frame.assign(predicted=break_ties(frame, near["predicted"].to_numpy())), 0.0)
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, index=False)
    summary = (table.groupby(["outer", "inner", "method", "variant"], sort=False)[METRICS]
               .agg(["mean", "std"]))
    cells = pd.DataFrame({m: [f"{a:.4f} ± {b:.4f}" for a, b in
                              zip(summary[(m, "mean")], summary[(m, "std")], strict=True)]
                          for m in METRICS}, index=summary.index)
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(cells.to_string())


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
