"""How many forward passes does a good shortlist need? `tpred.recommend`'s rule against random
order and "best metadata prediction first", on the embedded digits zoo.

For every split seed (default 0, 1, 2) and every fold of the cold-dataset protocol, the run's
method (default gnn, seeds of configs/default.yaml) is fitted on the training datasets only
(their records and scores; the held-out datasets are absent from the fitted zoo). Each held-out
dataset is then a new dataset: predicted from its metadata row alone, and then its models are
"forward-passed" in the order a rule chooses, one batch at a time, and everything is predicted
again with the new score edges (`Run.predict` with the dataset's row and the scores so far,
exactly what `python -m tpred.recommend` does).

A forward pass here is simulated by the zoo's precomputed scores of that (model, dataset) pair
(scores.csv: computed on the same training images as a forward pass of tpred.recommend would
use). As in `tpred.recommend`, metrics with a combine step over every candidate (NCTI) are not
used for held-out datasets. All held-out datasets of a fold advance in lockstep in one predict
call per batch (each with its own scored models); in the gnn, one held-out dataset's score edges
can reach another's predictions through the shared model nodes, as when several new datasets are
predicted together. The rule's std is the ensemble's raw std (no calibration is fitted per fold,
to keep the bench at a few minutes). `tpred.recommend` uses the calibrated σ = sqrt((scale ·
std / reference)² + floor²), a monotone function of the raw std; a scale alone would not change
the rule's order, but the floor can reorder two models whose |μ − τ| differ.

Rules: `tpred` (`tpred.recommend.boundary_priority`, K = --top-k, batches of --batch-size),
`random` (a seeded permutation per dataset), `metadata` (the models in the order of the ranking
before any forward pass). Budgets: 0, 10, 20, 50, 100 % of the models (rounded half up). Metrics
of the final ranking per held-out dataset (true accuracy vs predicted, the scored models
included at their prediction): top-1 regret and weighted Kendall tau; averaged over datasets per
split seed, then mean ± std over split seeds.

    nice -n 5 python bench/bench_budget.py                   # ~1 h on 2 shared cores
    python bench/bench_budget.py --seeds 0 --folds 1 --plot /tmp/b.png   # a quick look
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from tpred.api import Run
from tpred.checkpoint import fit_members
from tpred.data import load_zoo
from tpred.data.zoo import Zoo
from tpred.errors import MissingScoresWarning
from tpred.evaluation.metrics import per_dataset_metrics
from tpred.evaluation.protocols import make_splits
from tpred.recommend import budget_count, next_models
from tpred.scores.registry import get_metric
from tpred.train import load_config

ROOT = Path(__file__).resolve().parents[1]
FRACTIONS = (0.0, 0.1, 0.2, 0.5, 1.0)
RULES = ("tpred", "random", "metadata")


def without(zoo: Zoo, held: list[str]) -> Zoo:
    """The zoo without the held-out datasets (nodes, records, scores)."""
    keep = lambda f: f[~f["dataset"].isin(held)]  # noqa: E731
    return Zoo.from_frames(zoo.models, keep(zoo.datasets.reset_index()), keep(zoo.records),
                           keep(zoo.scores))


def run_fold(zoo: Zoo, cfg, split, *, method: str, top_k: int, batch_size: int,
             rules=RULES) -> pd.DataFrame:
    """Per held-out dataset × rule × budget: top-1 regret and weighted tau."""
    held = sorted(set(split.test["dataset"]))
    fitted = without(zoo, held)
    members = fit_members(fitted, cfg, method, split.train)
    run = Run(cfg, fitted, {method: members})
    rows = zoo.datasets.loc[held].reset_index()
    combine = {m for m in zoo.score_metrics if get_metric(m).combine is not None}
    pool = zoo.scores[zoo.scores["dataset"].isin(held) & ~zoo.scores["metric"].isin(combine)]
    pool = pool.set_index(["dataset", "model"]).sort_index()
    models = list(zoo.model_ids)
    truth = zoo.records[zoo.records["dataset"].isin(held)].set_index(["dataset", "model"])
    nominal = {budget_count(f, len(models)): f for f in FRACTIONS}
    checkpoints = sorted(nominal)

    def predict(scored: dict[str, list[str]]) -> pd.DataFrame:
        keys = [(d, m) for d, ms in scored.items() for m in ms]
        scores = pool.loc[pool.index.isin(keys)].reset_index() if keys else None
        with warnings.catch_warnings():  # as `tpred.recommend`: a shortlist is scored by design
            warnings.simplefilter("ignore", MissingScoresWarning)
            return run.predict(datasets=rows, scores=scores, method=method)

    def measure(pred: pd.DataFrame, rule: str, budget: int) -> list[dict]:
        frame = pred.assign(true=truth.loc[list(zip(pred["dataset"], pred["model"],
                                                     strict=True)), "accuracy"].to_numpy())
        per = per_dataset_metrics(frame)
        return [{"fold": split.fold, "dataset": d, "rule": rule, "budget": budget,
                 "fraction": nominal[budget], "top1_regret": r.top1_regret,
                 "weighted_tau": r.weighted_tau} for d, r in per.iterrows()]

    first = predict({d: [] for d in held})
    out = []
    for rule in rules:
        out += measure(first, rule, 0)
    order = {d: list(g.sort_values("predicted", ascending=False, kind="stable")["model"])
             for d, g in first.groupby("dataset")}
    for rule in rules:
        scored = {d: [] for d in held}
        pred = first
        rngs = {d: np.random.default_rng([split.seed, split.fold, i])
                for i, d in enumerate(held)}
        for target in checkpoints[1:]:
            while len(scored[held[0]]) < target:
                n = min(batch_size, target - len(scored[held[0]]))
                for d, g in pred.groupby("dataset"):
                    scored[d] += next_models(g, scored[d], n, k=top_k, rule=rule,
                                             order=order[d], rng=rngs[d])
                if rule == "tpred" or len(scored[held[0]]) == target:
                    pred = predict(scored)            # fixed orders need no re-prediction
            out += measure(pred, rule, target)
    return pd.DataFrame(out)


def summarise(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean over datasets per split seed, then mean ± std over split seeds."""
    per_seed = frame.groupby(["rule", "fraction", "seed"])[["top1_regret", "weighted_tau"]] \
        .mean()
    stats = per_seed.groupby(["rule", "fraction"]).agg(["mean", "std"])
    return stats


def table(stats: pd.DataFrame) -> str:
    fractions = sorted(stats.index.get_level_values("fraction").unique())
    lines = ["| rule | metric | " + " | ".join(f"{f:.0%}" for f in fractions) + " |",
             "|---|---|" + "---|" * len(fractions)]
    for rule in RULES:
        if rule not in stats.index.get_level_values("rule"):
            continue
        for metric in ("top1_regret", "weighted_tau"):
            cells = [f"{stats.loc[(rule, f), (metric, 'mean')]:.4f} ± "
                     f"{np.nan_to_num(stats.loc[(rule, f), (metric, 'std')]):.4f}"
                     for f in fractions]
            lines.append(f"| {rule} | {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(stats: pd.DataFrame, path: Path, num_models: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, metric, label in ((axes[0], "top1_regret", "top-1 regret (lower is better)"),
                              (axes[1], "weighted_tau", "weighted Kendall τ")):
        for rule in RULES:
            if rule not in stats.index.get_level_values("rule"):
                continue
            part = stats.loc[rule]
            x = 100 * part.index.to_numpy()
            ax.errorbar(x, part[(metric, "mean")], yerr=part[(metric, "std")].fillna(0),
                        marker="o", capsize=3, label=rule)
        ax.set_xlabel(f"forward passes (% of the {num_models} models)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("digits zoo, cold-dataset folds: ranking quality against the budget",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="default: configs/default.yaml")
    parser.add_argument("--method", default="gnn")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="split seeds of the cold-dataset protocol")
    parser.add_argument("--folds", type=int, default=None, help="only the first N folds")
    parser.add_argument("--top-k", type=int, default=1,
                        help="K of the rule (default 1: the metric is top-1 regret)")
    parser.add_argument("--batch-size", type=int, default=2,
                        help="models forward-passed between two predictions of the rule")
    parser.add_argument("--csv", type=Path, help="per-dataset results (written per fold)")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "bench_budget.png")
    args = parser.parse_args()
    cfg = load_config(args.config)
    zoo = load_zoo(cfg.data, model_features=cfg.model_features,
                   dataset_features=cfg.dataset_features)
    print(f"{cfg.name}: {zoo!r}; method {args.method} (seeds {list(cfg.seeds)}), K={args.top_k}, "
          f"batches of {args.batch_size}; budgets "
          f"{[budget_count(f, zoo.num_models) for f in FRACTIONS]} forward passes", flush=True)
    parts, start = [], time.perf_counter()
    for seed in args.seeds:
        for split in make_splits("cold-dataset", zoo, seed, cfg.protocol)[:args.folds]:
            got = run_fold(zoo, cfg, split, method=args.method, top_k=args.top_k,
                           batch_size=args.batch_size).assign(seed=seed)
            parts.append(got)
            now = got[got["fraction"].isin([0.2, 1.0])].groupby(["rule", "fraction"])[
                "top1_regret"].mean()
            print(f"  seed {seed} fold {split.fold}: {got['dataset'].nunique()} datasets; "
                  f"regret at 20 %/100 %: " + ", ".join(
                      f"{r} {now[(r, 0.2)]:.4f}/{now[(r, 1.0)]:.4f}" for r in RULES)
                  + f" ({time.perf_counter() - start:.0f} s)", flush=True)
            if args.csv:
                pd.concat(parts, ignore_index=True).to_csv(args.csv, index=False)
    frame = pd.concat(parts, ignore_index=True)
    stats = summarise(frame)
    print("\n" + table(stats))
    if args.plot:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        plot(stats, args.plot, zoo.num_models)
        print(f"plot: {args.plot}")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
