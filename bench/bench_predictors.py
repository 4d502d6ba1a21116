"""Every predictor on every benchmark: ranking and accuracy, mean ± std over seeds, gnn vs knn time.

    python bench/bench_predictors.py                          # all three benchmarks, seeds 0-4
    python bench/bench_predictors.py --benchmarks digits --seeds 0 1
    python bench/bench_predictors.py --out runs/bench         # also results.csv and results.md
    python bench/bench_predictors.py --parts runs/parts --seeds 0 &   # one process per seed,
    python bench/bench_predictors.py --parts runs/parts --seeds 1 &   # then one call over all
    python bench/bench_predictors.py --parts runs/parts --seeds 0 1   # seeds aggregates them

Benchmarks: the embedded digits zoo (configs/default.yaml), DomainNet-270 and sfda11 (read from
../shared/benchmarks). Protocols: cold-dataset and random-0.5 on each, plus the paper protocol
on DomainNet-270 (its own 10 seeds, as the published table). Methods: those of each config
(`score` as the best raw score of each cell: the most favourable choice for the baseline, taken
after the fact). Metrics: Spearman, weighted τ, top-1 regret, RMSE (paper: Avg, Cold Start).

For each cell the gnn is compared with the best other method: `ok` when it is at least as good
within one standard deviation (the larger of the two), and the line `cold-dataset weighted τ`
says whether its mean is strictly higher. The runtime ratio is the gnn's fit + predict time over
knn's, both summed over the same splits (of one run, or of the parts' processes run side by
side). Nothing is tuned here: the configs are
run as shipped.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from tpred.data import load_zoo
from tpred.evaluation.run import aggregate, evaluate
from tpred.train import REPO_ROOT, load_config

BENCHMARKS = {
    "digits": ("configs/default.yaml", ["cold-dataset", "random-0.5"]),
    "domainnet270": ("configs/domainnet270.yaml", ["cold-dataset", "random-0.5", "paper"]),
    "sfda11": ("configs/sfda11.yaml", ["cold-dataset", "random-0.5"]),
}
METRICS = {"held": ["spearman", "weighted_tau", "top1_regret", "rmse"],
           "paper": ["avg_pearson", "bucket_0_10"]}
LOWER_IS_BETTER = {"top1_regret", "rmse", "mae"}
LABELS = {"spearman": "Spearman", "weighted_tau": "weighted τ", "top1_regret": "top-1 regret",
          "rmse": "RMSE", "avg_pearson": "Avg", "bucket_0_10": "Cold Start"}


def run_benchmark(name: str, seeds: list[int], methods: list[str] | None,
                  parts: Path | None = None, protocols: list[str] | None = None
                  ) -> tuple[pd.DataFrame, dict[str, float]]:
    """Results (method, protocol, metric, mean, std, n) and runtime per method of one benchmark.

    Every (protocol, seed) is evaluated on its own; with `parts` its per-seed metrics and
    runtimes are saved there as soon as they exist (`<name>_<protocol>_<seed>.csv`) and read
    back instead of recomputed, so a run that is stopped loses at most one seed, and seeds can
    be run by separate processes and aggregated by a last call over all of them.
    """
    path, wanted = BENCHMARKS[name]
    wanted = [p for p in wanted if protocols is None or p in protocols]
    base = ["protocol.random_fractions=[0.5]"]
    if methods:
        base.append(f"methods=[{','.join(methods)}]")
    cfg = load_config(REPO_ROOT / path, base)
    zoo = None
    per_seed, runtime = [], {}
    for protocol in wanted:
        proto = "random" if protocol.startswith("random") else protocol
        proto_seeds = list(cfg.protocol.paper_seeds) if protocol == "paper" else seeds
        for seed in proto_seeds:
            part = parts / f"{name}_{protocol}_{seed}.csv" if parts else None
            if part is not None and part.exists():
                frame = pd.read_csv(part)
            else:
                if zoo is None:
                    zoo = load_zoo(cfg.data, REPO_ROOT, model_features=cfg.model_features,
                                   dataset_features=cfg.dataset_features)
                seed_key = "protocol.paper_seeds" if protocol == "paper" else "seeds"
                result = evaluate(zoo, cfg.override(f"protocols=[{proto}]")
                                  .override(f"{seed_key}=[{seed}]"), progress=False)
                frame = pd.concat([result.per_seed.assign(kind="metric"),
                                   pd.DataFrame({"method": list(result.runtime_s),
                                                 "value": list(result.runtime_s.values()),
                                                 "kind": "runtime"})], ignore_index=True)
                if part is not None:
                    part.parent.mkdir(parents=True, exist_ok=True)
                    frame.to_csv(part, index=False)
                print(f"  {name} {protocol} seed {seed} done", flush=True)
            per_seed.append(frame[frame["kind"] == "metric"])
            for _, row in frame[frame["kind"] == "runtime"].iterrows():
                runtime[row["method"]] = runtime.get(row["method"], 0.0) + row["value"]
    metrics = pd.concat(per_seed, ignore_index=True)[["method", "protocol", "seed", "metric",
                                                       "value"]]
    return aggregate(metrics).assign(benchmark=name), runtime


def best_score_rows(results: pd.DataFrame) -> pd.DataFrame:
    """Replace the `score:*` rows by one `best raw score` row per (protocol, metric).

    Its `which` column names the score that was best in that cell.
    """
    results = results.assign(which="")
    is_score = results["method"].str.startswith("score:")
    if not is_score.any():
        return results
    rows = []
    for _, group in results[is_score].groupby(["protocol", "metric"], sort=False):
        metric = group["metric"].iloc[0]
        i = group["mean"].idxmin() if metric in LOWER_IS_BETTER else group["mean"].idxmax()
        rows.append(group.loc[i].to_dict() | {"method": "best raw score",
                                              "which": group.loc[i, "method"][6:]})
    return pd.concat([results[~is_score], pd.DataFrame(rows)], ignore_index=True)


def verdicts(results: pd.DataFrame) -> list[str]:
    """One line per (protocol, metric): the gnn against the best other method."""
    lines = []
    for (protocol, metric), group in results.groupby(["protocol", "metric"], sort=False):
        shown = METRICS["paper" if protocol == "paper" else "held"]
        if metric not in shown or "gnn" not in set(group["method"]) or len(group) < 2:
            continue
        gnn = group[group["method"] == "gnn"].iloc[0]
        others = group[group["method"] != "gnn"].dropna(subset=["mean"])
        lower = metric in LOWER_IS_BETTER
        best = others.loc[others["mean"].idxmin() if lower else others["mean"].idxmax()]
        slack = max(float(gnn["std"]), float(best["std"]))
        diff = (best["mean"] - gnn["mean"]) if lower else (gnn["mean"] - best["mean"])
        ok = diff >= -slack
        lines.append(f"{protocol:12s} {LABELS.get(metric, metric):12s} gnn {gnn['mean']:.3f} vs "
                     f"{best['method']} {best['mean']:.3f}: "
                     f"{'better' if diff > 0 else 'worse'} by {abs(diff):.3f} "
                     f"({'ok' if ok else 'MISSED'} within one std {slack:.3f})")
    return lines


def markdown(results: pd.DataFrame, runtime: dict[str, float], name: str, seeds: list[int]
             ) -> str:
    """The benchmark's tables in Markdown, methods as rows."""
    out = []
    for protocol, group in results.groupby("protocol", sort=False):
        metrics = METRICS["paper" if protocol == "paper" else "held"]
        group = group[group["metric"].isin(metrics)]
        cell = group.assign(text=[f"{m:.3f} ± {s:.3f}" + (f" ({w})" if w else "") for m, s, w
                                  in zip(group["mean"], group["std"], group["which"],
                                         strict=True)])
        table = cell.pivot(index="method", columns="metric", values="text")[metrics]
        table = table.reindex(list(dict.fromkeys(group["method"]))).fillna("")
        n = int(group["n"].max())
        header = "| method | " + " | ".join(LABELS[m] for m in metrics) + " |"
        lines = [f"{name}, {protocol} (mean ± std over {n} seeds)", "", header,
                 "| --- " * (len(metrics) + 1) + "|"]
        lines += [f"| {method} | " + " | ".join(row) + " |" for method, row in table.iterrows()]
        out.append("\n".join(lines))
    if "gnn" in runtime and "knn" in runtime:
        out.append(f"gnn runtime / knn runtime: {runtime['gnn'] / runtime['knn']:.1f}× "
                   f"({runtime['gnn']:.0f} s / {runtime['knn']:.0f} s, same splits)")
    return "\n\n".join(out)


def plot(results: pd.DataFrame, path: Path) -> Path:
    """Weighted τ and Spearman (mean ± std over seeds) of every method, one panel per
    benchmark and protocol, the gnn in its own colour; the paper protocol's Avg / Cold Start
    are not in these metrics and have no panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = results[results["metric"].isin(["weighted_tau", "spearman"])]
    cells = list(shown.groupby(["benchmark", "protocol"], sort=False).groups)
    cols = min(3, len(cells))
    rows = -(-len(cells) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat[len(cells):]:
        ax.set_visible(False)
    for ax, (bench, protocol) in zip(axes.flat, cells, strict=False):
        part = shown[(shown["benchmark"] == bench) & (shown["protocol"] == protocol)]
        table = part.pivot_table(index="method", columns="metric", values=["mean", "std"],
                                 sort=False)
        y = np.arange(len(table))
        for offset, metric, label in ((-0.2, "weighted_tau", "weighted τ"),
                                      (0.2, "spearman", "Spearman")):
            colours = ["tab:red" if m == "gnn" else ("tab:blue" if metric == "weighted_tau"
                                                     else "tab:gray") for m in table.index]
            ax.barh(y + offset, table[("mean", metric)], height=0.4,
                    xerr=table[("std", metric)].fillna(0), color=colours, capsize=2,
                    label=label, alpha=1.0 if metric == "weighted_tau" else 0.5)
        ax.set_yticks(y, table.index, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(min(0.0, float(table["mean"].min().min())), 1.0)
        ax.set_title(f"{bench}, {protocol}", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="upper right")
    fig.suptitle("per-dataset ranking quality (mean ± std over seeds; gnn in red)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--benchmarks", nargs="+", default=list(BENCHMARKS),
                        choices=list(BENCHMARKS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--methods", nargs="+", default=None,
                        help="default: every method of each config")
    parser.add_argument("--protocols", nargs="+", default=None,
                        help="only these of each benchmark's protocols (cold-dataset, "
                             "random-0.5, paper)")
    parser.add_argument("--parts", type=Path, default=None,
                        help="folder of per-seed results: saved as each seed finishes, reused "
                             "when present (resume, or seeds run by separate processes)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for results.csv, runtime.csv, results.md and "
                             "results.png (a plot of the rankings)")
    args = parser.parse_args(argv)
    all_results, all_runtime, text = [], [], []
    for name in args.benchmarks:
        start = time.perf_counter()
        results, runtime = run_benchmark(name, args.seeds, args.methods, args.parts,
                                         args.protocols)
        results = best_score_rows(results)
        block = markdown(results, runtime, name, args.seeds)
        lines = verdicts(results)
        text.append(block + "\n\n```\n" + "\n".join(lines) + "\n```")
        print(f"\n{block}\n")
        print("\n".join(lines))
        print(f"({name}: {time.perf_counter() - start:.0f} s wall)")
        all_results.append(results)
        all_runtime += [{"benchmark": name, "method": k, "seconds": v} for k, v in runtime.items()]
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        table = pd.concat(all_results, ignore_index=True)
        table.to_csv(args.out / "results.csv", index=False)
        plot(table, args.out / "results.png")
        pd.DataFrame(all_runtime).to_csv(args.out / "runtime.csv", index=False)
        (args.out / "results.md").write_text("\n\n".join(text) + "\n")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    warnings.filterwarnings("ignore", category=FutureWarning)
    raise SystemExit(main())
