"""CPU and wall seconds of fitting and predicting each method on one seed's folds, in one run.

    python bench/bench_fit_time.py [--config configs/default.yaml] [--protocol cold-dataset]
        [--seed 0] [--methods knn gnn] [--set gnn.max_epochs=300 ...]

Prints one line per method and each method's CPU time as a ratio to the first one's: the gnn's
speed target (issue 12) is stated as gnn / knn measured in the same run, since absolute times
differ up to 3x between machines.
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
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="+", default=["knn", "gnn"])
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="config override (repeatable)")
    args = parser.parse_args()
    cfg = load_config(args.config, args.overrides)
    zoo = load_zoo(cfg.data, ROOT, model_features=cfg.model_features,
                   dataset_features=cfg.dataset_features)
    splits = make_splits(args.protocol, zoo, args.seed, cfg.protocol)
    first = None
    for method in args.methods:
        cpu, wall = time.process_time(), time.perf_counter()
        for split in splits:
            make_predictor(method, cfg, args.seed).fit(zoo, split.train).predict(split.test)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        first = first or cpu
        print(f"{method:>10}: {len(splits)} {args.protocol} folds, seed {args.seed}: "
              f"CPU {cpu:7.1f} s, wall {wall:7.1f} s, CPU / {args.methods[0]} {cpu / first:5.1f}x",
              flush=True)


if __name__ == "__main__":
    main()
