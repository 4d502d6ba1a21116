"""Check the protocols and metrics against the reference figures of DomainNet-270.

1. The additive baseline under the `paper` protocol over seeds 0-9 (README of
   ../shared/benchmarks/domainnet270: Avg 0.757 ± 0.006, Cold Start 0.613).
2. Model-mean ranking (each held-out pair predicted by its model's mean training accuracy) on
   `cold-dataset`, 5 folds, seeds 0-2 (issue 2: Spearman 0.603, weighted τ 0.530, top-1 regret
   0.021), and the additive baseline's RMSE on `random-0.5` (0.061).

Run from the repository root: `python bench/bench_paper_additive.py [--root PATH]`.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from tpred.config import ProtocolConfig
from tpred.data.zoo import Zoo
from tpred.errors import UndefinedMetricWarning
from tpred.evaluation.metrics import paper_matrices, paper_metrics, summarize
from tpred.evaluation.protocols import make_splits
from tpred.models.additive import AdditivePredictor

DEFAULT_ROOT = Path("../shared/benchmarks/domainnet270")


def load(root: Path) -> Zoo:
    return Zoo.from_frames(pd.read_csv(root / "models.csv"), pd.read_csv(root / "datasets.csv"),
                           pd.read_csv(root / "records.csv"))


def paper_additive(zoo: Zoo, seeds=range(10)) -> pd.DataFrame:
    """One row of `paper_metrics` per seed for the additive baseline."""
    cfg, rows = ProtocolConfig(), []
    for seed in seeds:
        (split,) = make_splits("paper", zoo, seed, cfg)
        predicted = AdditivePredictor().fit(zoo, split.train).predict(split.test)
        test = split.test.assign(true=zoo.accuracy(split.test), predicted=predicted)
        train = split.train.assign(true=zoo.accuracy(split.train))
        matrices = paper_matrices(test, train, split.context["models"], split.context["datasets"])
        rows.append({"seed": seed, **paper_metrics(*matrices)})
    return pd.DataFrame(rows).set_index("seed")


def model_mean(zoo: Zoo, train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """Each pair predicted by its model's mean accuracy over the training pairs."""
    means = pd.Series(zoo.accuracy(train)).groupby(train["model"].to_numpy()).mean()
    return means.reindex(test["model"].to_numpy()).to_numpy()


def held_out(zoo: Zoo, protocol: str, predict, seeds=(0, 1, 2)) -> pd.DataFrame:
    """`summarize` per seed over the union of the seed's folds."""
    cfg, rows = ProtocolConfig(num_folds=5), []
    for seed in seeds:
        frames = [split.test.assign(true=zoo.accuracy(split.test),
                                    predicted=predict(zoo, split.train, split.test))
                  for split in make_splits(protocol, zoo, seed, cfg)]
        rows.append({"seed": seed, **summarize(pd.concat(frames, ignore_index=True))})
    return pd.DataFrame(rows).set_index("seed")


def additive(zoo: Zoo, train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    return AdditivePredictor().fit(zoo, train).predict(test)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    args = parser.parse_args()
    zoo = load(args.root)
    wide = pd.read_csv(args.root / "records_wide_original.csv", index_col=0)
    (split,) = make_splits("paper", zoo, 0, ProtocolConfig())
    order = zoo.datasets.loc[list(split.context["datasets"]), "record_column"]
    print("paper matrix order == records_wide_original.csv:",
          list(split.context["models"]) == list(wide.index)
          and list(order) == list(wide.columns))

    start = time.perf_counter()
    paper = paper_additive(zoo)
    seconds = time.perf_counter() - start
    print(f"\nadditive, paper protocol, seeds 0-9 ({seconds:.1f} s):")
    for key in paper.columns:
        v = paper[key]
        print(f"  {key:14s} {v.mean():.4f} ± {v.std(ddof=1):.4f} (ddof=1; ddof=0: "
              f"{v.std(ddof=0):.4f})")
    print("  reference      avg_pearson 0.757 ± 0.006, bucket_0_10 (Cold Start) 0.613")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        cold = held_out(zoo, "cold-dataset", model_mean)
        rand = held_out(zoo, "random-0.5", additive)
    print("\nmodel-mean ranking, cold-dataset, 5 folds, seeds 0-2:")
    for key, ref in [("spearman", 0.603), ("weighted_tau", 0.530), ("top1_regret", 0.021),
                     ("pearson", None), ("kendall", None)]:
        v = cold[key]
        print(f"  {key:14s} {v.mean():.4f} ± {v.std(ddof=0):.4f}"
              + (f"   reference {ref}" if ref is not None else ""))
    print("\nadditive, random-0.5, seeds 0-2:")
    for key, ref in [("rmse", 0.061), ("mae", None), ("spearman", None)]:
        v = rand[key]
        print(f"  {key:14s} {v.mean():.4f} ± {v.std(ddof=0):.4f}"
              + (f"   reference {ref}" if ref is not None else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
