"""Inner check of the std calibration's form: coverage on inner held-out datasets.

    python bench/validate_calibration.py --config configs/domainnet270.yaml

For each outer cold-dataset fold (seed `--outer-seed`), only its *training* records are kept
(`validate.inner_zoo`); the inner cold-dataset fold 0 (seed 100) of that zoo is the test. On
the inner training pairs the calibration is fitted as `tpred.checkpoint.calibrate` fits it
(validation datasets carved out, the seed ensemble fitted on the rest), the ensemble is fitted
again on all inner training pairs, and the calibrated std is scored on the inner test pairs.
Forms compared (bench/README.md, "A relative ensemble spread"):

- `absolute`: sqrt((scale · std)² + floor²) on one validation fold, the form before 2026-12-02;
- `relative`: the same with each fit's std divided by that fit's reference spread: the mean
  std of its members over its own training pairs, predicted in `num_folds` chunks of datasets,
  each with its own records left out (`reference_spread`);
- `floor`: the 68.27 % quantile of the validation |error| for every pair;
- `pooled`, `pooled-relative`: `absolute` and `relative` fitted on `--pooled` validation folds
  together (each fold's datasets held out in turn, one ensemble fit per fold); `pooled-relative`
  with 3 folds is what `tpred.checkpoint.calibrate` did until 2026-12-03;
- `pooled-level`: `pooled-relative` plus (w · level spread)², the level spread of each pair's
  dataset from a knn fitted on the same training pairs (`tpred.checkpoint.level_spreads`), w by
  the normal log-likelihood (`fit_level_calibration`): what `calibrate` does now.

The one-fold forms use the first of the pooled folds (`validation_folds`), fitted once.

Printed per outer fold and as the mean: ±1 σ / ±2 σ coverage (68.3 % / 95.4 % for a calibrated
normal), the sd of the ±1 σ coverage over folds and its mean distance to 68.3 %; then the
normal negative log-likelihood (lower is better) and, per value of the config's first
categorical dataset column (`--by`), the ±1 σ coverage pooled over the outer folds, with the
mean distance of these groups from 68.3 % (a std that is right on average but too narrow on
hard datasets and too wide on easy ones shows here). The outer test pairs are never fitted,
predicted or scored.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from tpred.checkpoint import (
    NORMAL_COVERAGE,
    PAIR,
    calibrated_std,
    coverage,
    ensemble_predict,
    fit_calibration,
    fit_level_calibration,
    fit_members,
    gaussian_nll,
    level_spreads,
    level_weights,
    reference_spread,
    relative_spread,
    validation_folds,
)
from tpred.config import TrainConfig
from tpred.data import load_zoo
from tpred.evaluation.protocols import make_splits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from validate import inner_zoo  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "default.yaml")
    parser.add_argument("--method", default="gnn")
    parser.add_argument("--outer-seed", type=int, default=0)
    parser.add_argument("--pooled", type=int, default=3,
                        help="validation folds pooled by the `pooled` forms")
    parser.add_argument("--by", default=None,
                        help="dataset column of the per-group coverage (default: the config's "
                             "first categorical dataset feature)")
    args = parser.parse_args()
    cfg = TrainConfig.from_yaml(args.config)
    zoo = load_zoo(cfg.data, ROOT, model_features=cfg.model_features,
                   dataset_features=cfg.dataset_features)
    chunks = cfg.protocol.num_folds
    forms = ("absolute", "relative", "floor", "pooled", "pooled-relative", "pooled-level")
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in forms}
    by = args.by or next(iter(cfg.dataset_features.categorical), None)
    pooled_rows = []  # per test pair: group, |error|, and each form's sigma
    for outer in make_splits("cold-dataset", zoo, args.outer_seed, cfg.protocol):
        inner = inner_zoo(zoo, outer.train)
        split = make_splits("cold-dataset", inner, 100, cfg.protocol)[0]
        train = split.train[PAIR].reset_index(drop=True)
        # the calibration's folds (`validation_folds`): the first alone for the one-fold forms,
        # --pooled of them together for the pooled ones; one ensemble fit per fold
        folds = []
        held_folds = validation_folds(train, chunks, cfg.seeds[0], args.pooled)
        for held in held_folds:
            is_val = train["dataset"].isin(held).to_numpy()
            rest = train[~is_val].reset_index(drop=True)
            fold_pairs = train[is_val].reset_index(drop=True)
            fold_members = fit_members(inner, cfg, args.method, rest)
            fold_mean, fold_std = ensemble_predict(fold_members, fold_pairs)
            folds.append((inner.accuracy(fold_pairs), fold_mean, fold_std,
                          reference_spread(fold_members, rest, chunks, cfg.seeds[0]),
                          level_spreads(inner, cfg, rest, fold_pairs)))
        val_true, val_mean, val_std, val_ref, _ = folds[0]
        members = fit_members(inner, cfg, args.method, train)
        mean, std = ensemble_predict(members, split.test)
        true = inner.accuracy(split.test)
        ref = reference_spread(members, train, chunks, cfg.seeds[0])
        p_true, p_mean, p_std = (np.concatenate([f[i] for f in folds]) for i in range(3))
        p_rel = np.concatenate([relative_spread(f[2], f[3]) for f in folds])
        p_level = np.concatenate([f[4] for f in folds])
        level = level_spreads(inner, cfg, train, split.test)
        scale, floor, weight = fit_level_calibration(p_true, p_mean, p_rel, p_level,
                                                     level_weights(held_folds))
        sigma = {
            "pooled": calibrated_std(std, *fit_calibration(p_true, p_mean, p_std)),
            "pooled-relative": calibrated_std(relative_spread(std, ref),
                                              *fit_calibration(p_true, p_mean, p_rel)),
            "absolute": calibrated_std(std, *fit_calibration(val_true, val_mean, val_std)),
            "relative": calibrated_std(relative_spread(std, ref), *fit_calibration(
                val_true, val_mean, relative_spread(val_std, val_ref))),
            "floor": np.full(len(true), np.quantile(np.abs(val_true - val_mean),
                                                    NORMAL_COVERAGE[1])),
            "pooled-level": calibrated_std(relative_spread(std, ref), scale, floor,
                                           weight * level),
        }
        group = (inner.datasets[by].astype(str).reindex(split.test["dataset"]).to_numpy()
                 if by else np.full(len(true), "all"))
        pooled_rows.append(pd.DataFrame({"group": group, "true": true, "mean": mean,
                                         "spread": relative_spread(std, ref), "level": level,
                                         **{k: sigma[k] for k in forms}}))
        for name, s in sigma.items():
            results[name].append((coverage(true, mean, s, 1), coverage(true, mean, s, 2)))
        print(f"outer fold {outer.fold}: mean std validation {val_std.mean():.5f} (reference "
              f"{val_ref:.5f}), test {std.mean():.5f} (reference {ref:.5f}); "
              + ", ".join(f"{k} {100 * v[-1][0]:.1f} % / {100 * v[-1][1]:.1f} %"
                          for k, v in results.items()) + f"; level weight {weight:g}",
              flush=True)
    print(f"\n{args.config.name}, {args.method}: coverage ±1 σ / ±2 σ, mean over "
          f"{len(results['floor'])} outer folds (target 68.3 % / 95.4 %)")
    for name, values in results.items():
        one, two = np.array(values).T
        print(f"  {name:>15}: {100 * one.mean():.1f} % / {100 * two.mean():.1f} %  "
              f"(sd {one.std():.3f}, mean |±1 σ − 68.3 %| "
              f"{np.abs(one - NORMAL_COVERAGE[1]).mean():.3f})")
    frame = pd.concat(pooled_rows, ignore_index=True)
    groups = {k: frame.groupby("group").apply(
        lambda g, k=k: coverage(g["true"], g["mean"], g[k], 1), include_groups=False)
        for k in forms}
    table = pd.DataFrame(groups).T
    table.insert(0, "NLL", [gaussian_nll(frame["true"], frame["mean"], frame[k]) for k in forms])
    table["mean |group − 68.3 %|"] = [np.abs(groups[k] - NORMAL_COVERAGE[1]).mean()
                                      for k in forms]
    err = np.abs(frame["true"] - frame["mean"])
    print(f"\nrank correlation with |error| (test pairs pooled): relative spread "
          f"{spearmanr(err, frame['spread']).statistic:.3f}, level spread "
          f"{spearmanr(err, frame['level']).statistic:.3f}")
    print(f"\nnormal NLL and ±1 σ coverage by {by} (test pairs of every outer fold pooled):")
    with pd.option_context("display.width", 200):
        print(table.round(3).to_string())


if __name__ == "__main__":
    main()
