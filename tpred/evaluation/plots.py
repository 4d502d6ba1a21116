"""Plots of a run (matplotlib, Agg): predicted vs true per method, per-dataset Spearman."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from tpred.errors import UndefinedMetricWarning  # noqa: E402
from tpred.evaluation.metrics import per_dataset_metrics  # noqa: E402


def plot_run(result, out_dir: Path) -> list[Path]:
    """Write one predicted-vs-true grid and one Spearman box plot per protocol; return paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    predictions = result.predictions[np.isfinite(result.predictions["predicted"].to_numpy(
        dtype=np.float64))]                     # `score:<m>` is NaN where a pair lacks m
    for protocol, frame in predictions.groupby("protocol", sort=False):
        paths.append(plot_predicted_vs_true(frame, out_dir / f"pred_vs_true_{protocol}.png",
                                            title=protocol))
        paths.append(plot_spearman(frame, out_dir / f"spearman_{protocol}.png", title=protocol))
    return paths


def plot_predicted_vs_true(frame: pd.DataFrame, path: Path, *, title: str = "") -> Path:
    """A scatter panel per method (raw scores on their own y scale) with the diagonal."""
    methods = list(dict.fromkeys(frame["method"]))
    cols = min(4, len(methods))
    rows = int(np.ceil(len(methods) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    for ax, method in zip(axes.ravel(), methods, strict=False):
        sub = frame[frame["method"] == method]
        ax.scatter(sub["true"], sub["predicted"], s=4, alpha=0.3)
        if not method.startswith("score:"):
            lo = float(min(sub["true"].min(), sub["predicted"].min()))
            hi = float(max(sub["true"].max(), sub["predicted"].max()))
            ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
        r = np.corrcoef(sub["true"], sub["predicted"])[0, 1] if len(sub) > 1 else np.nan
        ax.set_title(f"{method}  r={r:.2f}", fontsize=9)
        ax.set_xlabel("true accuracy", fontsize=8)
        ax.set_ylabel("predicted", fontsize=8)
    for ax in axes.ravel()[len(methods):]:
        ax.axis("off")
    fig.suptitle(f"predicted vs true ({title}, all seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_spearman(frame: pd.DataFrame, path: Path, *, title: str = "") -> Path:
    """Box plot of per-dataset Spearman (held-out models) per method, over all seeds."""
    methods = list(dict.fromkeys(frame["method"]))
    values = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        for method in methods:
            sub = frame[frame["method"] == method]
            per = [per_dataset_metrics(g)["spearman"] for _, g in sub.groupby("seed")]
            v = pd.concat(per).to_numpy(dtype=float)
            values.append(v[np.isfinite(v)])
    fig, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(methods) + 2), 3.5))
    ax.boxplot(values, showmeans=True)
    ax.set_xticks(range(1, len(methods) + 1), methods, rotation=45, ha="right", fontsize=8)
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_ylabel("Spearman per held-out dataset")
    ax.set_title(f"ranking quality per dataset ({title})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
