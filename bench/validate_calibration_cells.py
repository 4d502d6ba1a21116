"""Inner check of the calibrated std on missing cells: the new-dataset form, or a form of their own.

    python bench/validate_calibration_cells.py --config configs/domainnet270.yaml \
        --outer cold-dataset random-0.5 --outer-seeds 0 1

A missing cell is a pair whose model and dataset both have records (`pair_kinds` "known"): the
usual question of a zoo with a partial history. For each outer split, only its *training*
records are kept (`validate.inner_zoo`); of those, `--cells` are held out at random (seed 100 +
outer fold + 1000 · outer seed) and those whose model and dataset keep records are the inner
test. The seed ensemble is fitted on the rest and calibrated there as
`tpred.checkpoint.calibrate` does:

- `one form`: `calibrate(..., cells=False)`: the form fitted on validation datasets for every
  pair (what tpred did before checkpoint format 7; the calibration below without its cells
  form);
- `cells`: `calibrate(...)`: missing cells get the form fitted on validation cells.

Outer cold-dataset keeps a dense inner zoo (every model on ~80 % of the datasets); outer
random-0.5 a sparse one. Printed per outer protocol: ±1 σ / ±2 σ coverage (68.3 % / 95.4 % for
a calibrated normal) and the normal negative log-likelihood (lower is better) of each form on
the inner test cells, pooled over the outer splits, the mean over splits of |±1 σ − 68.3 %|, and
the paired NLL difference (cells − one form) as mean ± std over the splits. The outer test
pairs are never fitted, predicted or scored.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

import tpred.checkpoint
from tpred.checkpoint import (
    NORMAL_COVERAGE,
    PAIR,
    calibrate,
    coverage,
    ensemble_predict,
    fit_members,
    gaussian_nll,
    level_spreads,
    pair_kinds,
)
from tpred.config import TrainConfig
from tpred.data import load_zoo
from tpred.evaluation.protocols import make_splits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from validate import inner_zoo  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: seed of the inner test cells, plus the outer fold and 1000 × the outer seed
INNER_SEED = 100
FORMS = ("one form", "cells")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "default.yaml")
    parser.add_argument("--method", default="gnn")
    parser.add_argument("--outer", nargs="+", default=["cold-dataset", "random-0.5"])
    parser.add_argument("--outer-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--max-outer-folds", type=int, default=None)
    parser.add_argument("--cells", type=float, default=0.2,
                        help="share of the inner records held out as test cells")
    parser.add_argument("--cell-share", type=float, default=None,
                        help="share of its training records the calibration holds out as "
                             "validation cells (default tpred.checkpoint.CELL_SHARE)")
    args = parser.parse_args()
    if args.cell_share is not None:
        tpred.checkpoint.CELL_SHARE = args.cell_share
    cfg = TrainConfig.from_yaml(args.config)
    zoo = load_zoo(cfg.data, ROOT, model_features=cfg.model_features,
                   dataset_features=cfg.dataset_features)
    rows, start = [], time.perf_counter()
    for protocol in args.outer:
        for seed in args.outer_seeds:
            for outer in make_splits(protocol, zoo, seed, cfg.protocol)[:args.max_outer_folds]:
                inner = inner_zoo(zoo, outer.train)
                pairs = outer.train[PAIR].reset_index(drop=True)
                rng = np.random.default_rng(INNER_SEED + outer.fold + 1000 * seed)
                held = np.zeros(len(pairs), dtype=bool)
                held[rng.choice(len(pairs), round(args.cells * len(pairs)), replace=False)] = True
                train = pairs[~held].reset_index(drop=True)
                test = pairs[held].reset_index(drop=True)
                test = test[pair_kinds(test, train) == "known"].reset_index(drop=True)
                members = fit_members(inner, cfg, args.method, train)
                mean, std = ensemble_predict(members, test)
                level = level_spreads(inner, cfg, train, test)
                kinds = pair_kinds(test, train)
                cal = calibrate(inner, cfg, args.method, train, members=members)
                # `calibrate(..., cells=False)` is this calibration without its cells form
                # (tests/test_predict.py), so one fit serves both
                sigma = {"one form": replace(cal, cells=None).apply(std, level, kinds),
                         "cells": cal.apply(std, level, kinds)}
                rows.append(test.assign(outer=protocol, seed=seed, fold=outer.fold,
                                        true=inner.accuracy(test), mean=mean, **sigma))
                print(f"{protocol} seed {seed} fold {outer.fold}: {len(train)} inner training "
                      f"pairs, {len(test)} test cells; ±1 σ "
                      + ", ".join(f"{n} {100 * coverage(rows[-1]['true'], mean, sigma[n], 1):.1f} %"
                                  for n in FORMS)
                      + f" ({time.perf_counter() - start:.0f} s)", flush=True)
    frame = pd.concat(rows, ignore_index=True)
    print(f"\n{args.config.name}, {args.method}: missing cells of the inner zoo, ±1 σ / ±2 σ "
          f"coverage (target 68.3 % / 95.4 %), normal NLL, mean |±1 σ − 68.3 %| over splits")
    for protocol, part in frame.groupby("outer", sort=False):
        splits = part.groupby(["seed", "fold"])
        cells = []
        for name in FORMS:
            one = splits.apply(lambda g, n=name: coverage(g["true"], g["mean"], g[n], 1),
                               include_groups=False)
            cells.append(f"{name} {100 * coverage(part['true'], part['mean'], part[name], 1):.1f}"
                         f" / {100 * coverage(part['true'], part['mean'], part[name], 2):.1f} %,"
                         f" NLL {gaussian_nll(part['true'], part['mean'], part[name]):.3f}, "
                         f"|dev| {np.abs(one - NORMAL_COVERAGE[1]).mean():.3f}")
        diff = splits.apply(lambda g: gaussian_nll(g["true"], g["mean"], g["cells"])
                            - gaussian_nll(g["true"], g["mean"], g["one form"]),
                            include_groups=False)
        print(f"  outer {protocol} ({len(part)} cells, {splits.ngroups} splits): "
              + "; ".join(cells) + f"; NLL cells − one form {diff.mean():+.3f} ± "
              f"{diff.std(ddof=0):.3f} ({int((diff < 0).sum())} of {len(diff)} lower)")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
