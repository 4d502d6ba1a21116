"""Inner validation of blending the gnn toward knn (issue 12, ranking quality; an experiment).

    python bench/validate_blend.py --config configs/default.yaml \
        --outer cold-dataset random-0.6 --outer-seeds 0 1 --out blend.csv

The blend is gnn + w · (knn − gnn) with w in [0, 1] fitted on a cold-dataset fold carved from
the *inner* training pairs, two ways: `blend` by least squares on accuracy, `blend_rank` as the
w of `RANK_GRID` with the best weighted τ on that fold. Nested, so the inner test pairs are
never used to fit w, and the outer test pairs never enter at all (outer and inner splits as in
`bench/validate.py`, inner protocol cold-dataset, inner seed 100, nested seed 200). Printed: the
mean ± std over outer splits of each inner metric for gnn, knn and the blend, and the fitted w
per inner fold. Not part of `tpred`: it costs a second gnn and knn fit per fit (the nested one).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tpred.data import load_zoo
from tpred.evaluation.protocols import make_splits
from tpred.models import make_predictor
from tpred.train import REPO_ROOT, load_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from validate import METRICS, inner_metrics, inner_zoo  # noqa: E402

#: candidate weights of `blend_rank`
RANK_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)


def rank_weight(gnn: np.ndarray, knn: np.ndarray, pairs: pd.DataFrame, true: np.ndarray
                ) -> float:
    """The w of `RANK_GRID` whose blend has the best weighted τ on `pairs` (ties: smaller w)."""
    scores = [inner_metrics(pairs.assign(true=true, predicted=gnn + w * (knn - gnn)))[
        "weighted_tau"] for w in RANK_GRID]
    return RANK_GRID[int(np.nanargmax(scores))]


def blend_weight(gnn: np.ndarray, knn: np.ndarray, true: np.ndarray) -> float:
    """Least-squares w of true ≈ gnn + w (knn − gnn), clipped to [0, 1]."""
    d = knn - gnn
    return float(np.clip(d @ (true - gnn) / max(float(d @ d), 1e-12), 0.0, 1.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=REPO_ROOT / "configs" / "default.yaml")
    parser.add_argument("--outer", nargs="+", default=["cold-dataset", "random-0.6"])
    parser.add_argument("--outer-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--max-outer-folds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="CSV of every inner result")
    args = parser.parse_args()
    cfg = load_config(args.config)
    zoo = load_zoo(cfg.data, REPO_ROOT, model_features=cfg.model_features,
                   dataset_features=cfg.dataset_features)
    rows = []
    for protocol in args.outer:
        for seed in args.outer_seeds:
            for split in make_splits(protocol, zoo, seed, cfg.protocol)[:args.max_outer_folds]:
                izoo = inner_zoo(zoo, split.train)
                frames: dict[str, list[pd.DataFrame]] = {"gnn": [], "knn": [], "blend": [],
                                                         "blend_rank": []}
                weights, rank_weights = [], []
                for inner in make_splits("cold-dataset", izoo, 100, cfg.protocol):
                    nzoo = inner_zoo(izoo, inner.train)
                    nested = make_splits("cold-dataset", nzoo, 200, cfg.protocol)[0]
                    n_gnn = make_predictor("gnn", cfg, seed).fit(nzoo, nested.train).predict(
                        nested.test)
                    n_knn = make_predictor("knn", cfg, seed).fit(nzoo, nested.train).predict(
                        nested.test)
                    n_true = nzoo.accuracy(nested.test)
                    w = blend_weight(n_gnn, n_knn, n_true)
                    w_rank = rank_weight(n_gnn, n_knn, nested.test[["model", "dataset"]],
                                         n_true)
                    rank_weights.append(w_rank)
                    weights.append(w)
                    gnn = make_predictor("gnn", cfg, seed).fit(izoo, inner.train).predict(
                        inner.test)
                    knn = make_predictor("knn", cfg, seed).fit(izoo, inner.train).predict(
                        inner.test)
                    true = izoo.accuracy(inner.test)
                    for name, pred in (("gnn", gnn), ("knn", knn),
                                       ("blend", gnn + w * (knn - gnn)),
                                       ("blend_rank", gnn + w_rank * (knn - gnn))):
                        frames[name].append(inner.test.assign(true=true, predicted=pred))
                for name, parts in frames.items():
                    rows.append({"outer": protocol, "seed": seed, "fold": split.fold,
                                 "method": name, "w_mean": float(np.mean(weights)),
                                 "w_rank_mean": float(np.mean(rank_weights)),
                                 **inner_metrics(pd.concat(parts, ignore_index=True))})
                print(f"{protocol} seed {seed} fold {split.fold}: w {np.round(weights, 2)}, "
                      f"w_rank {rank_weights}", flush=True)
    table = pd.DataFrame(rows)
    if args.out:
        table.to_csv(args.out, index=False)
    summary = table.groupby(["outer", "method"], sort=False)[METRICS].agg(["mean", "std"])
    with pd.option_context("display.width", 200):
        print(summary.round(4).to_string())


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
