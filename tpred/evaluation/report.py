"""Writing a run's evaluation: metrics.json/csv, predictions, plots; the printed table."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pandas as pd

from tpred.evaluation.run import RunResult
from tpred.evaluation.sink import PredictionsWriter

log = logging.getLogger(__name__)

#: rows of predictions.csv formatted at a time
PREDICTION_CHUNK = 100_000

#: order of metrics in tables and files
METRIC_ORDER = ("avg_pearson", "bucket_0_10", "bucket_10_30", "bucket_30_50", "bucket_50_70",
                "bucket_70_90", "bucket_90_100", "pearson", "spearman", "kendall",
                "weighted_tau", "top1_regret", "rmse", "mae", "global_pearson")


def save_run(result: RunResult, out_dir: Path, *, plots: bool = True) -> Path:
    """Write the evaluation's outputs into `out_dir` (created); the checkpoint is not one."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = _ordered(result.results)
    ok = results[results["metric"] != "error"]
    payload = {"config": result.config.to_dict(),
               "results": [{"method": r.method, "protocol": r.protocol, "metric": r.metric,
                            "mean": _num(r.mean), "std": _num(r.std), "n": int(r.n),
                            "pairs": int(r.pairs)}
                           for r in ok.itertuples()],
               "runtime_s": {k: round(v, 3) for k, v in result.runtime_s.items()},
               "errors": dict(result.errors)}
    (out_dir / "metrics.json").write_text(json.dumps(payload, indent=1, allow_nan=False))
    results.to_csv(out_dir / "metrics.csv", index=False)
    result.per_seed.to_csv(out_dir / "metrics_per_seed.csv", index=False)
    if result.predictions_path is None:  # else evaluate streamed them there
        with PredictionsWriter(out_dir / "predictions.csv") as writer:
            for lo in range(0, len(result.predictions), PREDICTION_CHUNK):
                writer.write(result.predictions.iloc[lo:lo + PREDICTION_CHUNK])
    result.config.to_yaml(out_dir / "config.yaml")
    if plots and len(result.predictions):
        from tpred.evaluation.plots import plot_run
        plot_run(result, out_dir / "plots")
    return out_dir


def format_table(results: pd.DataFrame) -> str:
    """One block per protocol: methods as rows, metrics as columns, `mean ± std`.

    A `pairs` column (held-out pairs per seed the method's figures cover) is shown when some
    method covers fewer pairs than another (`score:<m>` where pairs lack `m`); a failed method
    is listed below the tables with its error.
    """
    blocks = []
    results = _ordered(results)
    failed = results[results["metric"] == "error"]
    results = results[results["metric"] != "error"]
    for protocol, group in results.groupby("protocol", sort=False):
        text = [_cell(m, s) for m, s in zip(group["mean"], group["std"], strict=True)]
        cell = group.assign(text=text)
        table = cell.pivot(index="method", columns="metric", values="text")
        table = table.reindex(columns=[m for m in METRIC_ORDER if m in table.columns]
                              + [m for m in table.columns if m not in METRIC_ORDER])
        table = table.reindex(index=list(dict.fromkeys(group["method"]))).fillna("")
        if "pairs" in group.columns:
            pairs = group.groupby("method", sort=False)["pairs"].max()
            if pairs.nunique() > 1:
                table.insert(0, "pairs", pairs.reindex(table.index).astype(int))
        n = int(group["n"].max())
        blocks.append(f"== {protocol} (mean ± std over {n} seed(s)) ==\n"
                      + table.to_string())
    if len(failed):
        blocks.append("\n".join(f"FAILED {m}: {e}" for m, e in
                                zip(*failed.drop_duplicates("method")[["method", "error"]]
                                    .to_numpy().T, strict=True)))
    return "\n\n".join(blocks)


def _ordered(results: pd.DataFrame) -> pd.DataFrame:
    """Protocols and methods in the run's order, metrics in METRIC_ORDER."""
    keys = pd.DataFrame({
        col: results[col].map({v: i for i, v in enumerate(dict.fromkeys(results[col]))})
        for col in ("protocol", "method")})
    rank = {m: i for i, m in enumerate(METRIC_ORDER)}
    keys["metric"] = results["metric"].map(lambda m: rank.get(m, len(rank)))
    order = keys.sort_values(["protocol", "method", "metric"], kind="stable").index
    return results.loc[order].reset_index(drop=True)


def _cell(mean: float, std: float) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "nan"
    return f"{mean:.3f} ± {std:.3f}"


def _num(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) \
        else round(float(value), 6)
