"""How fit time, predict time and memory grow with the zoo: synthetic zoos of 10^2..10^4 models.

    python bench/bench_scale.py                       # sizes 100,1000,10000; all methods
    python bench/bench_scale.py --sizes 100,1000 --methods additive,knn,gnn --seeds 0,1,2

For each size M: a synthetic zoo (`tpred.zoo.synth`) of M models x 10 M datasets whose density
puts the records on a geometric line from 10^3 (M = 100) to 10^6 (M = 10^4), with no text
features. Each (size, method, seed) runs in a fresh process (so its peak RSS is its own) on one
`cold-dataset` fold (20 % of the datasets held out, seed s): fit on the others' records, predict
the held-out records, score Spearman per held-out dataset (averaged). The parent watches the
child's RSS and stops it past `--budget-gb` or `--timeout` (reported, not hidden).

Prints one row per (size, method): records, fit s, predict s, peak RSS, Spearman (mean ± std
over seeds), then per method the least-squares slope of log(fit + predict time) and of log(peak
RSS - the RSS of an idle process) on log(records), and the time and memory of the 10^6-record zoo:
measured when it ran, else extrapolated from the slope (said so). Writes the rows to
`--out` (CSV) and a log-log plot beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
METHODS = ("additive", "lr", "mf", "knn", "score:proxy_strong", "gnn")
GOAL_RECORDS, GOAL_S, GOAL_GB = 10**6, 30 * 60, 8.0


def records_target(num_models: int) -> int:
    """10^3 records at 100 models to 10^6 at 10^4, geometric in between."""
    return round(10 ** (3 + 1.5 * (math.log10(num_models) - 2)))


def make_zoo(num_models: int, seed: int, work: Path) -> Path:
    """The synthetic zoo of size `num_models` (written once, reused while its spec matches)."""
    from tpred.zoo.synth import SynthSpec, write_synth_zoo

    num_datasets = 10 * num_models
    spec = SynthSpec(num_models, num_datasets,
                     density=records_target(num_models) / (num_models * num_datasets),
                     seed=seed, text=False)
    out = work / f"synth-{num_models}"
    info = out / "synth.json"
    if not (info.exists() and json.loads(info.read_text())["spec"] == spec.__dict__):
        write_synth_zoo(spec, out)
    return out


# ------------------------------------------------------------------------------ one child run
def child(zoo_dir: Path, method: str, seed: int, overrides: list[str] | None = None) -> dict:
    """Fit and predict one method on one cold-dataset fold (the zoo's config.yaml, then each
    `--set` override); figures as a dict."""
    from tpred.config import TrainConfig
    from tpred.data import load_zoo
    from tpred.errors import UndefinedMetricWarning
    from tpred.evaluation.metrics import summarize
    from tpred.evaluation.protocols import make_splits
    from tpred.models import make_predictor

    cfg = TrainConfig.from_yaml(zoo_dir / "config.yaml")
    for assignment in overrides or []:
        cfg = cfg.override(assignment)
    zoo = load_zoo(cfg.data, model_features=cfg.model_features,
                   dataset_features=cfg.dataset_features)
    split = make_splits("cold-dataset", zoo, seed, cfg.protocol)[0]
    rss_loaded = _peak_rss_mb()
    start, cpu = time.perf_counter(), time.process_time()
    predictor = make_predictor(method, cfg, seed).fit(zoo, split.train)
    fit_s, fit_cpu_s = time.perf_counter() - start, time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    predicted = np.asarray(predictor.predict(split.test), dtype=np.float64)
    predict_s, predict_cpu_s = time.perf_counter() - start, time.process_time() - cpu
    frame = split.test.assign(true=zoo.accuracy(split.test), predicted=predicted)
    with warnings.catch_warnings():  # datasets with < 2 held-out models: NaN, skipped
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        spearman = summarize(frame)["spearman"]
    return {"records": len(zoo.records), "train": len(split.train), "test": len(split.test),
            "fit_s": fit_s, "predict_s": predict_s, "fit_cpu_s": fit_cpu_s,
            "predict_cpu_s": predict_cpu_s, "rss_loaded_mb": rss_loaded,
            "peak_rss_mb": _peak_rss_mb(), "spearman": spearman}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def idle_rss_mb() -> float:
    """Peak RSS of a process that imports tpred's predictors and does nothing else."""
    code = ("import resource, tpred.models, tpred.data, tpred.evaluation.run; "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=_env())
    return float(out.stdout.strip())


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def run_child(zoo_dir: Path, method: str, seed: int, *, budget_gb: float,
              timeout_s: float, overrides: list[str] | None = None) -> dict:
    """Run `child` in a fresh process; stop it past the memory budget or the timeout."""
    import psutil

    cmd = [sys.executable, __file__, "--child", str(zoo_dir), method, str(seed)]
    for assignment in overrides or []:
        cmd += ["--set", assignment]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())
    watched, start, status, peak = psutil.Process(proc.pid), time.monotonic(), "ok", 0.0
    while proc.poll() is None:
        try:
            rss = watched.memory_info().rss / 2**20
        except psutil.NoSuchProcess:
            break
        peak = max(peak, rss)
        if rss > budget_gb * 1024:
            status = f"stopped: RSS over {budget_gb:g} GB"
        elif time.monotonic() - start > timeout_s:
            status = f"stopped: over {timeout_s:g} s"
        if status != "ok":
            proc.kill()
            break
        time.sleep(0.2)
    out, err = proc.communicate()
    if status == "ok" and proc.returncode != 0:
        status = f"failed (exit {proc.returncode}): {err.strip().splitlines()[-1:]}"
    result = json.loads(out.strip().splitlines()[-1]) if status == "ok" else {}
    return {"method": method, "seed": seed, "status": status,
            "watched_peak_rss_mb": peak, **result}


# ------------------------------------------------------------------------------ report
def slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of log(y) on log(x); NaN with fewer than 2 points."""
    ok = (x > 0) & (y > 0) & np.isfinite(y)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(x[ok]), np.log(y[ok]), 1)[0])


def report(rows: pd.DataFrame, idle_mb: float) -> str:
    lines = []
    ok = rows[rows["status"] == "ok"].copy()
    ok["time_s"] = ok["fit_s"] + ok["predict_s"]
    # CPU seconds of the child (all its threads): on a shared machine wall time also counts
    # the waits for a core; rows from before this column was added have NaN
    ok["cpu_s"] = (ok["fit_cpu_s"] + ok["predict_cpu_s"]) if "fit_cpu_s" in ok else np.nan
    table = ok.groupby(["size", "method"], sort=False).agg(
        records=("records", "first"), fit_s=("fit_s", "mean"), predict_s=("predict_s", "mean"),
        cpu_s=("cpu_s", "mean"),
        peak_rss_mb=("peak_rss_mb", "max"), spearman=("spearman", "mean"),
        spearman_std=("spearman", lambda v: v.std(ddof=1) if len(v) > 1 else 0.0),
        seeds=("seed", "count"))
    lines.append(f"{'models':>7} {'method':<20} {'records':>9} {'fit s':>9} {'predict s':>9} "
                 f"{'CPU s':>8} {'peak RSS MB':>11} {'cold-dataset Spearman':>22}")
    for (size, method), r in table.iterrows():
        lines.append(f"{size:>7} {method:<20} {int(r.records):>9} {r.fit_s:>9.2f} "
                     f"{r.predict_s:>9.2f} {r.cpu_s:>8.2f} {r.peak_rss_mb:>11.0f} "
                     f"{r.spearman:>12.3f} ± {r.spearman_std:.3f} (n={int(r.seeds)})")
    for _, r in rows[rows["status"] != "ok"].iterrows():
        lines.append(f"{r['size']:>7} {r['method']:<20} {r['status']}")
    lines.append(f"\nslopes of log(y) on log(records); idle process RSS {idle_mb:.0f} MB "
                 f"(subtracted for the memory slope); goal: 10^6 records < {GOAL_S // 60} min, "
                 f"< {GOAL_GB:g} GB")
    lines.append(f"{'method':<20} {'time slope':>10} {'CPU slope':>10} {'RSS slope':>10}   "
                 f"10^6 records")
    for method, g in table.reset_index().groupby("method", sort=False):
        x = g["records"].to_numpy(dtype=float)
        t = (g["fit_s"] + g["predict_s"]).to_numpy()
        m = np.maximum(g["peak_rss_mb"].to_numpy() - idle_mb, 1.0)
        st, sm, sc = slope(x, t), slope(x, m), slope(x, g["cpu_s"].to_numpy())
        big = g[g["records"] >= 0.9 * GOAL_RECORDS]
        if len(big):
            r = big.iloc[-1]
            goal = (f"measured: {r.fit_s + r.predict_s:.0f} s, {r.peak_rss_mb / 1024:.1f} GB "
                    f"({int(r.records)} records)")
        elif len(g) >= 2:
            r = g.iloc[-1]
            factor = GOAL_RECORDS / r.records
            goal = (f"extrapolated from {int(r.records)} records: "
                    f"{(r.fit_s + r.predict_s) * factor**st:.0f} s, "
                    f"{(idle_mb + (r.peak_rss_mb - idle_mb) * factor**sm) / 1024:.1f} GB")
        else:
            goal = "not enough sizes to extrapolate"
        lines.append(f"{method:<20} {st:>10.2f} {sc:>10.2f} {sm:>10.2f}   {goal}")
    return "\n".join(lines)


def plot(rows: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = rows[rows["status"] == "ok"].assign(time_s=lambda f: f["fit_s"] + f["predict_s"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for method, g in ok.groupby("method", sort=False):
        g = g.groupby("records", as_index=False).agg(time_s=("time_s", "mean"),
                                                    peak=("peak_rss_mb", "max"))
        axes[0].loglog(g["records"], g["time_s"], "o-", label=method)
        axes[1].loglog(g["records"], g["peak"], "o-", label=method)
    for ax, label in zip(axes, ("fit + predict time (s)", "peak RSS (MB)"), strict=True):
        ax.set_xlabel("records")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("bench/bench_scale.py: synthetic zoos, one cold-dataset fold")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/bench_scale.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000,10000", help="numbers of models")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds", default="0", help="cold-dataset fold seeds")
    parser.add_argument("--budget-gb", type=float, default=GOAL_GB,
                        help="stop a run whose RSS exceeds this")
    parser.add_argument("--timeout", type=float, default=2 * GOAL_S,
                        help="stop a run after this many seconds")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "bench-scale",
                        help="folder of the synthetic zoos")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench-scale" / "scale.csv")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override an entry of the zoos' config.yaml for every run, e.g. "
                             "gnn.max_epochs=20 (repeatable; printed with the table)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(Path(args.child[0]), args.child[1], int(args.child[2]),
                               args.overrides)))
        return 0

    sizes = [int(s) for s in args.sizes.split(",")]
    methods = [m for m in args.methods.split(",") if m]
    seeds = [int(s) for s in args.seeds.split(",")]
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    idle_mb = idle_rss_mb()
    rows = []
    for size in sizes:
        start = time.perf_counter()
        zoo_dir = make_zoo(size, 0, args.work)
        print(f"# {size} models: zoo ready in {time.perf_counter() - start:.0f} s ({zoo_dir})",
              file=sys.stderr)
        for method in methods:
            for seed in seeds:
                row = run_child(zoo_dir, method, seed, budget_gb=args.budget_gb,
                                timeout_s=args.timeout, overrides=args.overrides)
                rows.append({"size": size, **row})
                print(f"#   {method} seed {seed}: {row['status']} "
                      + (f"fit {row['fit_s']:.1f} s, predict {row['predict_s']:.1f} s, "
                         f"peak {row['peak_rss_mb']:.0f} MB, Spearman {row['spearman']:.3f}"
                         if row["status"] == "ok" else ""), file=sys.stderr)
                pd.DataFrame(rows).to_csv(args.out, index=False)  # kept if a later size dies
    frame = pd.DataFrame(rows)
    if args.overrides:
        print("config overrides: " + ", ".join(args.overrides))
    print(report(frame, idle_mb))
    plot(frame, args.out.with_suffix(".png"))
    print(f"\nrows in {args.out}, plot in {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
