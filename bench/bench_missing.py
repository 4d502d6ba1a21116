"""Every predictor as metadata cells go blank and scores go missing: cold-dataset Spearman, RMSE.

    nice -n 10 python bench/bench_missing.py                        # digits and DomainNet-270
    nice -n 10 python bench/bench_missing.py --benchmarks digits --seeds 0 1 --out runs/missing

Benchmarks: the embedded digits zoo (configs/default.yaml) and DomainNet-270
(configs/domainnet270.yaml, read from ../shared/benchmarks), each run with its config's
methods, features and gnn settings as shipped (nothing is tuned here). Conditions, one at a time
from the complete zoo:

- `blank b`: each numeric and categorical metadata cell of a feature column (models and
  datasets) blanked with probability b (0, 0.2, 0.5); the featurizers impute them (median plus a
  missing indicator; a `missing` category). Text columns are left whole.
- `scores -s`: each row of the scores table (one pair, one metric) deleted with probability s
  (0.5, 0.9; and 1.0 = no scores at all: the baselines other than the gnn, the reference
  "without scores"). DomainNet-270 has no scores table, so it gets the blank conditions only.

The masks are drawn per seed (`np.random.default_rng(seed)`), and each seed is one run of the
cold-dataset protocol (its folds drawn with the same seed). Figures: mean ± std over seeds of
the per-seed Spearman (averaged over held-out datasets) and RMSE (over held-out pairs). `score`
is the best raw score of each cell (taken after the fact: the most favourable choice for that
baseline), over the pairs that have it, so its coverage (`pairs`) shrinks with the scores; its
RMSE is meaningless (a score is not an accuracy) and not shown.

The verdict lines compare the gnn at 50 % missing scores with the best method other than the gnn
on the zoo without any score (`scores -1.0`, the best baseline without scores), and the gnn at
the largest share of blank metadata with the best other method at that share.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from tpred.data import load_zoo
from tpred.data.zoo import Zoo
from tpred.evaluation.run import evaluate
from tpred.train import REPO_ROOT, load_config

BENCHMARKS = {"digits": "configs/default.yaml", "domainnet270": "configs/domainnet270.yaml"}
BLANKS = (0.0, 0.2, 0.5)
MISSING_SCORES = (0.5, 0.9, 1.0)
METRICS = ("spearman", "rmse")


def blank_metadata(table: pd.DataFrame, columns: list[str], share: float,
                   rng: np.random.Generator) -> pd.DataFrame:
    """`table` with each cell of `columns` set to NaN with probability `share`."""
    out = table.copy()
    for col in columns:
        mask = rng.random(len(out)) < share
        if mask.any():
            numeric = pd.api.types.is_numeric_dtype(out[col])
            out[col] = out[col].astype(np.float64 if numeric else object)
            out.loc[mask, col] = np.nan
    return out


def degrade(zoo: Zoo, cfg, blank: float, missing_scores: float, seed: int) -> Zoo:
    """The zoo with blank metadata cells and deleted score rows (masks drawn from `seed`)."""
    rng = np.random.default_rng(seed)
    models, datasets, scores = zoo.models, zoo.datasets, zoo.scores
    if blank:
        feats = cfg.model_features
        models = blank_metadata(models, list(feats.numeric) + list(feats.categorical), blank, rng)
        feats = cfg.dataset_features
        datasets = blank_metadata(datasets, list(dict.fromkeys(
            list(feats.numeric) + list(feats.categorical))), blank, rng)
    if missing_scores and len(scores):
        scores = scores[rng.random(len(scores)) >= missing_scores].reset_index(drop=True)
    return Zoo.from_frames(models.reset_index(), datasets.reset_index(), zoo.records, scores)


def run_condition(zoo: Zoo, cfg, blank: float, missing_scores: float, seeds: list[int]
                  ) -> pd.DataFrame:
    """Per-seed cold-dataset Spearman and RMSE (and pairs covered) of every method."""
    rows = []
    for seed in seeds:
        c = cfg.override(f"seeds=[{seed}]")
        degraded = degrade(zoo, c, blank, missing_scores, seed)
        if missing_scores >= 1.0:  # no scores at all: the reference baselines, without the gnn
            c = c.override("methods=[" + ",".join(m for m in c.methods
                                                  if m not in ("score", "gnn")) + "]")
        result = evaluate(degraded, c, progress=False)
        for method, error in result.errors.items():
            print(f"  FAILED {method} (blank {blank}, scores -{missing_scores}, seed {seed}): "
                  f"{error}")
        per = result.per_seed[result.per_seed["metric"].isin(METRICS)]
        rows.append(per.assign(blank=blank, missing_scores=missing_scores))
    return pd.concat(rows, ignore_index=True)


def summarise(per_seed: pd.DataFrame) -> pd.DataFrame:
    """mean ± std over seeds per (condition, method, metric); `score:*` folded into the best."""
    keys = ["blank", "missing_scores", "method", "metric"]
    agg = per_seed.groupby(keys, sort=False).agg(
        mean=("value", "mean"), std=("value", lambda v: float(v.std(ddof=1)) if len(v) > 1
                                     else 0.0), pairs=("pairs", "mean"),
        n=("value", "count")).reset_index()
    is_score = agg["method"].str.startswith("score:")
    best = []
    for _, group in agg[is_score & (agg["metric"] == "spearman")].groupby(
            ["blank", "missing_scores"], sort=False):
        row = group.loc[group["mean"].idxmax()].to_dict()
        best.append(row | {"method": f"best score ({row['method'][6:]})"})
    return pd.concat([agg[~is_score], pd.DataFrame(best)], ignore_index=True)


def condition_label(blank: float, missing: float) -> str:
    if missing >= 1.0:
        return "no scores"
    return f"blank {blank:.0%}, scores -{missing:.0%}"


def markdown(summary: pd.DataFrame, name: str, seeds: list[int]) -> str:
    """One table: methods as rows, conditions as columns, `Spearman / RMSE`."""
    conditions = list(dict.fromkeys(zip(summary["blank"], summary["missing_scores"],
                                        strict=True)))
    methods = list(dict.fromkeys(m for m in summary["method"] if not m.startswith("best score")))
    if any(summary["method"].str.startswith("best score")):
        methods.append("best score")
    header = ("| method | " + " | ".join(condition_label(b, s) for b, s in conditions) + " |")
    lines = [f"{name}, cold-dataset, Spearman / RMSE (mean ± std over {len(seeds)} seeds "
             f"{seeds})", "", header, "| --- " * (len(conditions) + 1) + "|"]
    for method in methods:
        cells = []
        for b, s in conditions:
            sub = summary[(summary["blank"] == b) & (summary["missing_scores"] == s)]
            if method == "best score":
                sub = sub[sub["method"].str.startswith("best score")]
            else:
                sub = sub[sub["method"] == method]
            sp = sub[sub["metric"] == "spearman"]
            rm = sub[sub["metric"] == "rmse"]
            if not len(sp):
                cells.append("")
                continue
            text = f"{sp['mean'].item():.3f} ± {sp['std'].item():.3f}"
            if method == "best score":
                text += f" ({sp['method'].item()[12:-1]}, {sp['pairs'].item():.0f} pairs)"
            elif len(rm):
                text += f" / {rm['mean'].item():.3f} ± {rm['std'].item():.3f}"
            cells.append(text)
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare(g: pd.Series, best: pd.Series, what: str) -> str:
    """One line: the gnn's Spearman `g` against `best` (rows of `summarise`), `what` it is."""
    slack = max(float(g["std"]), float(best["std"]))
    diff = float(g["mean"] - best["mean"])
    return (f"gnn {what}: Spearman {g['mean']:.3f} ± {g['std']:.3f} vs {best['method']} "
            f"{best['mean']:.3f} ± {best['std']:.3f}: {'above' if diff > 0 else 'below'} by "
            f"{abs(diff):.3f} ({'beyond' if abs(diff) > slack else 'within'} one std {slack:.3f})")


def verdict(summary: pd.DataFrame) -> str | None:
    """The gnn at 50 % missing scores against the best other method on the zoo without scores,
    and the gnn at the largest share of blank metadata against the best other method there."""
    sp = summary[summary["metric"] == "spearman"]
    lines = []
    gnn = sp[(sp["method"] == "gnn") & (sp["blank"] == 0) & (sp["missing_scores"] == 0.5)]
    base = sp[(sp["missing_scores"] == 1.0) & (sp["method"] != "gnn")]
    if len(gnn) and len(base):
        lines.append(compare(gnn.iloc[0], base.loc[base["mean"].idxmax()],
                             "at 50 % missing scores, against the best baseline without scores"))
    if (sp["blank"] > 0).any():
        most = float(sp["blank"].max())
        at = sp[(sp["blank"] == most) & (sp["missing_scores"] == 0)]
        gnn, others = at[at["method"] == "gnn"], at[at["method"] != "gnn"]
        if len(gnn) and len(others):
            lines.append(compare(gnn.iloc[0], others.loc[others["mean"].idxmax()],
                                 f"at {most:.0%} blank metadata, against the best other method"))
    return "\n".join(lines) or None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--benchmarks", nargs="+", default=list(BENCHMARKS),
                        choices=list(BENCHMARKS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--folds", type=int, default=5, help="cold-dataset folds (default 5)")
    parser.add_argument("--blanks", type=float, nargs="*", default=list(BLANKS),
                        help="shares of blank metadata cells (default 0 0.2 0.5)")
    parser.add_argument("--missing-scores", type=float, nargs="*", default=list(MISSING_SCORES),
                        help="shares of deleted score rows (default 0.5 0.9 1.0)")
    parser.add_argument("--combine", type=Path, nargs="+", default=None,
                        help="only print the tables of per_seed CSV files written before")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="config override for every benchmark")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for per_seed.csv, summary.csv and results.md")
    args = parser.parse_args(argv)
    if args.combine:
        per_seed = pd.concat([pd.read_csv(f) for f in args.combine], ignore_index=True)
        for name, part in per_seed.groupby("benchmark", sort=False):
            seeds = sorted(part["seed"].unique().tolist())
            summary = summarise(part)
            print(markdown(summary, name, seeds) + "\n\n" + (verdict(summary) or "") + "\n")
        return 0
    texts, per_seed_all, summary_all = [], [], []
    for name in args.benchmarks:
        start = time.perf_counter()
        cfg = load_config(REPO_ROOT / BENCHMARKS[name],
                          ["protocols=[cold-dataset]", f"protocol.num_folds={args.folds}",
                           *args.overrides])
        zoo = load_zoo(cfg.data, REPO_ROOT, model_features=cfg.model_features,
                       dataset_features=cfg.dataset_features)
        conditions = [(b, 0.0) for b in args.blanks]
        if zoo.score_metrics:
            conditions += [(0.0, s) for s in args.missing_scores]
        frames = []
        for blank, missing in conditions:
            t = time.perf_counter()
            frames.append(run_condition(zoo, cfg, blank, missing, args.seeds))
            print(f"{name}: {condition_label(blank, missing)} done in "
                  f"{time.perf_counter() - t:.0f} s", flush=True)
            if args.out:  # what is done so far, in case the run is stopped
                args.out.mkdir(parents=True, exist_ok=True)
                pd.concat(frames, ignore_index=True).assign(benchmark=name).to_csv(
                    args.out / f"per_seed_{name}.partial.csv", index=False)
        per_seed = pd.concat(frames, ignore_index=True).assign(benchmark=name)
        summary = summarise(per_seed).assign(benchmark=name)
        block = markdown(summary, name, args.seeds)
        if line := verdict(summary):
            block += f"\n\n{line}"
        print(f"\n{block}\n({name}: {time.perf_counter() - start:.0f} s wall)\n", flush=True)
        texts.append(block)
        per_seed_all.append(per_seed)
        summary_all.append(summary)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        pd.concat(per_seed_all, ignore_index=True).to_csv(args.out / "per_seed.csv", index=False)
        pd.concat(summary_all, ignore_index=True).to_csv(args.out / "summary.csv", index=False)
        (args.out / "results.md").write_text("\n\n".join(texts) + "\n")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    raise SystemExit(main())
