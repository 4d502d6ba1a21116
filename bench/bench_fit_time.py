"""CPU and wall seconds of fitting and predicting each method on some seeds' folds, in one run.

    python bench/bench_fit_time.py [--config configs/default.yaml] [--protocol cold-dataset]
        [--seeds 0] [--methods knn gnn] [--set gnn.max_epochs=300 ...]

Prints one line per method and seed, and per method the total over the seeds with its CPU time
as a ratio to the first method's: the gnn's speed target (issue 12) is stated as gnn / knn
measured in the same run, since absolute times differ up to 3x between machines. One seed's
ratio can mislead (a fit that is still learning runs on): give several with `--seeds`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tpred.data import load_zoo
from tpred.evaluation.protocols import make_splits
from tpred.models import make_predictor
from tpred.train import load_config

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "default.yaml")
    parser.add_argument("--protocol", default="cold-dataset")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--methods", nargs="+", default=["knn", "gnn"])
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="config override (repeatable)")
    args = parser.parse_args()
    cfg = load_config(args.config, args.overrides)
    zoo = load_zoo(cfg.data, ROOT, model_features=cfg.model_features,
                   dataset_features=cfg.dataset_features)
    splits = {seed: make_splits(args.protocol, zoo, seed, cfg.protocol) for seed in args.seeds}
    first = None
    for method in args.methods:
        total_cpu = total_wall = 0.0
        for seed, seed_splits in splits.items():
            cpu, wall = time.process_time(), time.perf_counter()
            for split in seed_splits:
                make_predictor(method, cfg, seed).fit(zoo, split.train).predict(split.test)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            total_cpu, total_wall = total_cpu + cpu, total_wall + wall
            print(f"{method:>10}: {len(seed_splits)} {args.protocol} folds, seed {seed}: "
                  f"CPU {cpu:7.1f} s, wall {wall:7.1f} s", flush=True)
        first = first or total_cpu
        print(f"{method:>10}: seeds {args.seeds}: CPU {total_cpu:7.1f} s, "
              f"wall {total_wall:7.1f} s, CPU / {args.methods[0]} {total_cpu / first:5.1f}x",
              flush=True)


if __name__ == "__main__":
    main()
