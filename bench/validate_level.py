"""The cold-dataset level alone: the gnn's kernel-ridge feature prior, knn's neighbour level, and
their mean, on inner splits of each outer cold-dataset fold's *training* datasets only.

    python bench/validate_level.py configs/default.yaml 0 1      # config, outer seeds

For each outer fold: the training datasets are cut into (at most) 10 held-out groups; for each,
the additive model is fitted on the other training datasets' records and the held-out datasets
get mu + model effect + a predicted dataset effect: `ridge` (`baseline.shrink_to_prior`), `knnK`
(the similarity-weighted mean effect of the K most similar fitted datasets, cosine of centred
features, as `knn`; 0 where they all weigh 0), `meanK` (the mean of the two, the ridge alone where
knnK has no weight: `gnn.prior_neighbors=K`'s prior), `fsmeanK` (the same with knn's kernel, the
mean of the feature cosine and the score-vector cosine; equal to meanK on a zoo without scores),
`w75meanK` (the neighbour level weighted 3/4 against the ridge's 1/4), `massmeanK` (weighted by
its neighbours' mean cosine λ against the ridge's 1 − λ), `zero` (no dataset
effect). Prints the RMSE
per method (mean ± std over outer folds) and each one's paired difference from `ridge`.
No network is trained: this isolates what the prior contributes (bench/README.md, "The
cold-dataset level").
"""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from tpred.data import load_zoo
from tpred.evaluation.protocols import make_splits
from tpred.graph import DATASET
from tpred.models._inputs import NodeFeatures, encoder_for
from tpred.models.additive import additive_effects
from tpred.models.gnn.baseline import PriorNeighbours, shrink_to_prior
from tpred.models.gnn.predictor import score_similarity
from tpred.models.neighbours import (
    neighbour_level,
    neighbour_order,
    neighbour_weight,
    self_excluded_similarity,
    sorted_neighbour_mean,
)
from tpred.train import REPO_ROOT, load_config


def level_errors(cfg_path: str, seeds: list[int]) -> pd.DataFrame:
    """RMSE per (seed, fold) and level method (columns) over the held-out training datasets."""
    cfg = load_config(REPO_ROOT / cfg_path, [])      # an absolute path stays absolute
    zoo = load_zoo(cfg.data, REPO_ROOT, model_features=cfg.model_features,
                   dataset_features=cfg.dataset_features)
    encoder = encoder_for(cfg)
    # the gnn's `scores` kernel over every dataset (scores need no fine-tuning), computed once
    every_ssim = score_similarity(zoo, zoo.score_metrics)[DATASET]
    rows = []
    for seed in seeds:
        for split in make_splits("cold-dataset", zoo, seed, cfg.protocol):
            train = split.train
            model_ids = pd.Index(pd.unique(train["model"]))
            dataset_ids = pd.Index(pd.unique(train["dataset"]))
            x = NodeFeatures(cfg.dataset_features, encoder).fit(
                zoo.datasets, dataset_ids).transform(zoo.datasets, dataset_ids)
            x = np.asarray(x, np.float64)                                   # [D, F]
            gram = x @ x.T
            sim = self_excluded_similarity(x - x.mean(0))
            order = neighbour_order(sim)
            weight = neighbour_weight(sim, order)
            # knn's kernel: the mean of the feature cosine and the score-vector cosine (the
            # scores kernel restricted to the training datasets)
            keep = zoo.dataset_ids.get_indexer(dataset_ids)
            ssim = None if every_ssim is None else every_ssim[np.ix_(keep, keep)]
            fs_sim = sim if ssim is None else (sim + ssim) / 2
            fs_order = neighbour_order(fs_sim)
            fs_weight = neighbour_weight(fs_sim, fs_order)
            src, dst = model_ids.get_indexer(train["model"]), dataset_ids.get_indexer(
                train["dataset"])
            acc = zoo.accuracy(train)
            groups = np.array_split(np.random.default_rng(seed).permutation(len(dataset_ids)),
                                    min(len(dataset_ids), 10))
            sse: dict[str, float] = {}
            count = 0
            for held in groups:
                out = np.isin(dst, held)
                mu, model_eff, dataset_eff = additive_effects(
                    src[~out], dst[~out], acc[~out], len(model_ids), len(dataset_ids))
                degree = np.bincount(dst[~out], minlength=len(dataset_ids)).astype(float)
                levels = {"zero": np.zeros(len(dataset_ids)),
                          "ridge": shrink_to_prior(dataset_eff, degree, gram)}
                known_row = (degree > 0)[order]                                 # [D, D]
                for k in (1, 2, 3, 5, 10):
                    nb, has = neighbour_level(dataset_eff, degree > 0, order, weight, k)
                    levels[f"knn{k}"] = nb
                    # what `gnn.prior_neighbors=k` computes
                    levels[f"mean{k}"] = shrink_to_prior(dataset_eff, degree, gram,
                                                         PriorNeighbours(order, weight, k))
                    # the same with knn's features+scores kernel (`fsmeanK`), and with the
                    # neighbour level weighted 3/4 against the ridge's 1/4 (`w75meanK`)
                    levels[f"fsmean{k}"] = shrink_to_prior(
                        dataset_eff, degree, gram, PriorNeighbours(fs_order, fs_weight, k))
                    levels[f"w75mean{k}"] = np.where(
                        has, (levels["ridge"] + 3 * nb) / 4, levels["ridge"])
                    # the neighbour level weighted by its similarity mass: lam = the mean
                    # cosine of the k neighbours, sum w^2 / sum w (`massmeanK`)
                    lam = sorted_neighbour_mean(np.where(known_row, weight, np.nan), weight, k)
                    levels[f"massmean{k}"] = np.where(
                        has, (1 - lam) * levels["ridge"] + lam * nb, levels["ridge"])
                for name, level in levels.items():
                    pred = mu + model_eff[src[out]] + level[dst[out]]
                    sse[name] = sse.get(name, 0.0) + float(((pred - acc[out]) ** 2).sum())
                count += int(out.sum())
            rows += [dict(seed=seed, fold=split.fold, method=name, rmse=np.sqrt(v / count))
                     for name, v in sse.items()]
    return pd.DataFrame(rows).pivot_table(index=["seed", "fold"], columns="method",
                                          values="rmse")


def main() -> None:
    cfg_path, seeds = sys.argv[1], [int(s) for s in sys.argv[2:]] or [0]
    table = level_errors(cfg_path, seeds)
    print(cfg_path)
    print(table.agg(["mean", "std"]).round(4).T)
    for name in table.columns.drop("ridge"):
        diff = table[name] - table["ridge"]
        print(f"{name} - ridge: {diff.mean():+.4f} ± {diff.std():.4f} "
              f"(lower in {(diff < 0).mean():.0%} of folds)")


if __name__ == "__main__":
    main()
