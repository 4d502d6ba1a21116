"""Inner check of the calibrated std on each kind of pair: one form for every pair, or a form per
kind (new dataset, new model, both new), fitted on held-out models as well as datasets.

    python bench/validate_calibration_kinds.py --config configs/domainnet270.yaml

For each outer fold of `--outer` (seed `--outer-seed`), only its *training* records are kept
(`validate.inner_zoo`). Of that zoo, an inner test is carved: a fold of datasets and a fold of
models (`validation_folds`, seed 100 + outer fold + 1000 · outer seed), held out with all
their records, and `--known` of the remaining records at random (missing cells between a
model and a dataset that both keep records). The inner test pairs are thus of the four kinds
of `tpred.checkpoint.pair_kinds`. The seed ensemble is fitted on the rest and calibrated there
as `tpred.checkpoint.calibrate` does:

- `one form`: `calibrate(..., by_kind=False)`: validation datasets only, one form for every pair
  (what tpred did before checkpoint format 7);
- `by kind`: `calibrate(...)`: a fold of validation models held out with each fold of validation
  datasets, a form per kind (`Calibration.apply(..., kinds)`).

Printed: ±1 σ / ±2 σ coverage (68.3 % / 95.4 % for a calibrated normal) and the normal negative
log-likelihood (lower is better) of each form on each kind of inner test pair, pooled over the
outer folds, and the mean over folds of |±1 σ coverage − 68.3 %|. The outer test pairs are never
fitted, predicted or scored.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tpred.checkpoint import (
    NORMAL_COVERAGE,
    PAIR,
    PAIR_KINDS,
    calibrate,
    coverage,
    ensemble_predict,
    fit_members,
    gaussian_nll,
    level_spreads,
    pair_kinds,
    validation_folds,
)
from tpred.config import TrainConfig
from tpred.data import load_zoo
from tpred.evaluation.protocols import make_splits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from validate import inner_zoo  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: seed of the inner test's folds, plus the outer fold and 1000 x the outer seed, so that each
#: outer fold holds out other models (the calibration's own folds use the config's first seed)
INNER_SEED = 100


def inner_test(train: pd.DataFrame, num_folds: int, known: float, seed: int
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(inner training pairs, inner test pairs) of `train`: a fold of datasets and a fold of
    models held out with all their records, and a share `known` of the other records."""
    datasets = validation_folds(train, num_folds, seed, 1)[0]
    models = validation_folds(train, num_folds, seed, 1, "model")[0]
    held = (train["dataset"].isin(datasets) | train["model"].isin(models)).to_numpy().copy()
    rest = np.flatnonzero(~held)
    cells = np.random.default_rng(seed).choice(rest, int(round(known * len(rest))),
                                               replace=False)
    held[cells] = True
    return train[~held].reset_index(drop=True), train[held].reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "default.yaml")
    parser.add_argument("--method", default="gnn")
    parser.add_argument("--outer", default="cold-dataset",
                        help="outer protocol (cold-dataset, cold-model, random-0.5, ...)")
    parser.add_argument("--outer-seed", type=int, default=0)
    parser.add_argument("--max-outer-folds", type=int, default=None)
    parser.add_argument("--known", type=float, default=0.1,
                        help="share of the remaining inner records held out as missing cells")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE")
    args = parser.parse_args()
    cfg = TrainConfig.from_yaml(args.config)
    for assignment in args.overrides:
        cfg = cfg.override(assignment)
    zoo = load_zoo(cfg.data, ROOT, model_features=cfg.model_features,
                   dataset_features=cfg.dataset_features)
    outers = make_splits(args.outer, zoo, args.outer_seed, cfg.protocol)[:args.max_outer_folds]
    rows, start = [], time.perf_counter()
    for outer in outers:
        inner = inner_zoo(zoo, outer.train)
        train, test = inner_test(outer.train[PAIR].reset_index(drop=True),
                                 cfg.protocol.num_folds, args.known,
                                 INNER_SEED + outer.fold + 1000 * args.outer_seed)
        members = fit_members(inner, cfg, args.method, train)
        mean, std = ensemble_predict(members, test)
        kinds = pair_kinds(test, train)
        level = level_spreads(inner, cfg, train, test)
        sigma = {}
        for name, by_kind in (("one form", False), ("by kind", True)):
            cal = calibrate(inner, cfg, args.method, train, members=members, by_kind=by_kind)
            sigma[name] = cal.apply(std, level, kinds)
        rows.append(test.assign(fold=outer.fold, kind=kinds, true=inner.accuracy(test),
                                mean=mean, **sigma))
        print(f"outer fold {outer.fold}: {len(train)} inner training pairs; test "
              + ", ".join(f"{k} {int((kinds == k).sum())}" for k in PAIR_KINDS)
              + f" ({time.perf_counter() - start:.0f} s)", flush=True)
    frame = pd.concat(rows, ignore_index=True)
    print(f"\n{args.config.name}, {args.method}, outer {args.outer} seed {args.outer_seed}, "
          f"{len(outers)} folds: ±1 σ / ±2 σ coverage (target 68.3 % / 95.4 %), normal NLL, "
          f"mean over folds of |±1 σ − 68.3 %|; inner test pairs pooled")
    for kind in PAIR_KINDS:
        part = frame[frame["kind"] == kind]
        if not len(part):
            continue
        cells = []
        for name in ("one form", "by kind"):
            per_fold = part.groupby("fold").apply(
                lambda g, n=name: coverage(g["true"], g["mean"], g[n], 1), include_groups=False)
            cells.append(f"{name} {100 * coverage(part['true'], part['mean'], part[name], 1):.1f}"
                         f" / {100 * coverage(part['true'], part['mean'], part[name], 2):.1f} %, "
                         f"NLL {gaussian_nll(part['true'], part['mean'], part[name]):.3f}, "
                         f"|dev| {np.abs(per_fold - NORMAL_COVERAGE[1]).mean():.3f}")
        print(f"  {kind:>8} ({len(part)} pairs): " + "; ".join(cells))
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
