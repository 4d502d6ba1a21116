"""Save every method's test predictions, or compare them bit for bit with a saved snapshot.

    python bench/snapshot_predictions.py --out /tmp/before.parquet            # before a change
    python bench/snapshot_predictions.py --compare /tmp/before.parquet        # after it

A refactoring that must not change behaviour is checked with this: the same zoos, protocols,
seeds and methods, fitted and predicted as `tpred.train` does (`tpred.evaluation.run.evaluate`),
and the predictions compared with `==` (not a tolerance). Default: the digits zoo and
DomainNet-270, cold-dataset, random-0.5 and cold-model, seed 0, every configured method.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tpred.data import load_zoo
from tpred.evaluation.run import evaluate
from tpred.train import REPO_ROOT, load_config

CONFIGS = ("configs/default.yaml", "configs/domainnet270.yaml")
KEY = ["config", "method", "protocol", "seed", "fold", "model", "dataset"]


def snapshot(configs: list[str], protocols: list[str], seeds: list[int],
             methods: list[str] | None) -> pd.DataFrame:
    """Test predictions of every (config, method, protocol, seed, fold, pair)."""
    frames = []
    for path in configs:
        overrides = [f"protocols=[{','.join(protocols)}]", "protocol.random_fractions=[0.5]",
                     f"seeds=[{','.join(map(str, seeds))}]"]
        if methods:
            overrides.append(f"methods=[{','.join(methods)}]")
        cfg = load_config(REPO_ROOT / path, overrides)
        zoo = load_zoo(cfg.data, REPO_ROOT, model_features=cfg.model_features,
                       dataset_features=cfg.dataset_features)
        start = time.perf_counter()
        result = evaluate(zoo, cfg, progress=True)
        print(f"{path}: {len(result.predictions)} predictions in "
              f"{time.perf_counter() - start:.0f}s; runtime {result.runtime_s}", file=sys.stderr)
        frames.append(result.predictions.assign(config=path))
    return pd.concat(frames, ignore_index=True)[KEY + ["predicted"]]


def compare(before: pd.DataFrame, after: pd.DataFrame) -> int:
    """Print per (config, method, protocol) whether the predictions are identical; 1 if not."""
    merged = before.merge(after, on=KEY, how="outer", suffixes=("_before", "_after"),
                          indicator=True)
    status = 0
    for key, group in merged.groupby(["config", "method", "protocol"], sort=False):
        unmatched = int((group["_merge"] != "both").sum())
        a, b = group["predicted_before"].to_numpy(), group["predicted_after"].to_numpy()
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        differ = int((~same).sum()) - unmatched
        worst = float(np.nanmax(np.abs(a - b))) if differ else 0.0
        ok = unmatched == 0 and differ == 0
        status |= not ok
        print(f"{'identical' if ok else 'DIFFERENT'}  {' / '.join(map(str, key))}: "
              f"{len(group)} pairs, {differ} differ (max |diff| {worst:.3g}), "
              f"{unmatched} unmatched")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--protocols", nargs="+",
                        default=["cold-dataset", "random", "cold-model"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--methods", nargs="+", default=None,
                        help="default: every method of each config")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--out", type=Path, help="write the snapshot (parquet)")
    group.add_argument("--compare", type=Path, help="compare with this snapshot (parquet)")
    args = parser.parse_args(argv)
    now = snapshot(args.configs, args.protocols, args.seeds, args.methods)
    if args.out:
        now.to_parquet(args.out, index=False)
        print(f"wrote {len(now)} predictions to {args.out}")
        return 0
    return compare(pd.read_parquet(args.compare), now)


if __name__ == "__main__":
    raise SystemExit(main())
