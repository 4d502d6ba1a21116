"""Does a better ranking give a better tuned model, and does B-Tuning beat fine-tuning? Digits zoo.

    python bench/bench_tuning.py                  # 24 targets, seeds 0-2, 2 workers
    python bench/bench_tuning.py --quick          # 2 targets, 1 seed: a smoke run

Every target's ranking comes from a gnn fitted *without* that target's records (the cold-dataset
protocol of `tpred.train`, configs/default.yaml, one gnn per seed), so the ranking is what a
user with a new dataset gets. Arms, all full fine-tuning (every layer, a new head) of the zoo's
re-created source networks on the target's training images, scored on its test images:

  (a)  ft-predicted       fine-tune the gnn's top-1
  (b)  bt-predicted       B-Tuning: student = the gnn's top-1, teachers = the gnn's top-3
  (b') bt-predicted-λ100  the same with the reference's λ = 100 instead of the validated λ
  (c)  bt-logme           B-Tuning: student = LogME's top-1, teachers = LogME's top-3 (the
                          paper's recipe), validated λ
  (d)  ft-random          fine-tune a model drawn uniformly (one draw per target and seed)
  (e)  ft-oracle          fine-tune the true best: the model with the best mean test accuracy
                          over the seeds when *every* model is fine-tuned (one target per domain)

The 24 targets: 6 domains × (4, 8 classes) × (5, 20 images per class). Hyper-parameters fixed a
priori: T = 0.1 (the reference), 200 steps of 32 images, SGD with Nesterov momentum 0.9, weight
decay 5e-4, head at 10× the backbone's learning rate. Chosen first, in this script, by inner
validation: the learning rate of each method and B-Tuning's λ. On the six 8-class targets with
20 images per class, the *training* images are split per class into halves (inner train / inner
validation); student and teachers are the gnn's top-1 / top-3 for that target (seed 0); the
setting with the best mean inner-validation accuracy wins. No test image chooses anything.

Printed: mean ± std over targets × seeds per arm; paired differences (b) − (a), (b') − (a),
(c) − (a), (b) − (c) with Wilcoxon signed-rank p-values (scipy.stats.wilcoxon; over targets ×
seeds, and over per-target means since seeds of one target are not independent); the regret of
(a) and (d) against (e); (b) − (a) and (b') − (a) by size, classes and domain. Written to --out:
runs.csv (one row per fine-tuning run), results.csv (one row per arm, target and seed),
validation.csv, gnn_rankings.csv; the plot to --plot.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy.stats import wilcoxon
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "data" / "digits-zoo"
SEEDS = (0, 1, 2)
DOMAINS = ("original", "rotated", "inverted", "noisy", "blurred", "shifted")
#: per domain: 4 and 8 classes × 5 and 20 images per class; the label division cycles a, b, c
#: over the domains so that the label sets differ
SIZES = ((4, 5), (8, 5), (4, 20), (8, 20))
#: the oracle fine-tunes every model on one target per domain: 4 classes × 5 images in the
#: first three domains, 8 classes × 20 images in the others
ORACLE_SIZES = {**{d: (4, 5) for d in DOMAINS[:3]}, **{d: (8, 20) for d in DOMAINS[3:]}}
#: inner validation: the targets with this size (one per domain)
VALIDATION_SIZE = (8, 20)
LR_GRID = (0.0003, 0.001, 0.003, 0.01)
TRADEOFF_GRID = (1.0, 10.0, 100.0)
#: the reference's λ, run beside the validated one as arm (b') (same learning rate)
REFERENCE_TRADEOFF = 100.0
ARMS = {"a": "ft-predicted", "b": "bt-predicted", "b'": "bt-predicted-λ100", "c": "bt-logme",
        "d": "ft-random", "e": "ft-oracle"}


def targets() -> list[str]:
    """The 24 targets: 6 domains × (4, 8 classes) × (5, 20 images per class)."""
    out = []
    for i, domain in enumerate(DOMAINS):
        division = "abc"[i % 3]
        out += [f"{domain}_{n}{division}_{spc}" for n, spc in SIZES]
    return out


def oracle_targets() -> list[str]:
    return [t for t in targets()
            if tuple(int(v) for v in _size(t)) == ORACLE_SIZES[t.split("_")[0]]]


def _size(target: str) -> tuple[str, str]:
    _, cls, spc = target.split("_")
    return cls[:-1], spc


# --------------------------------------------------------------------------------- rankings
def gnn_rankings(seeds, progress: bool) -> pd.DataFrame:
    """Cold-dataset predictions of the gnn (configs/default.yaml) for every dataset and seed.

    Returns:
        Columns seed, model, dataset, predicted (each dataset predicted by the fold's gnn that
        never saw its records).
    """
    from tpred.data import load_zoo
    from tpred.evaluation.run import evaluate
    from tpred.train import load_config

    cfg = load_config(None)
    cfg = replace(cfg, methods=("gnn",), protocols=("cold-dataset",), seeds=tuple(seeds))
    zoo = load_zoo(cfg.data, model_features=cfg.model_features,
                   dataset_features=cfg.dataset_features)
    result = evaluate(zoo, cfg, progress=progress)
    return result.predictions[["seed", "model", "dataset", "predicted"]]


def ranked(frame: pd.DataFrame, column: str, model_order: list[str]) -> list[str]:
    """Models sorted by `column`, best first; ties keep the zoo's model order."""
    order = {m: i for i, m in enumerate(model_order)}
    frame = frame.assign(_o=frame["model"].map(order))
    return list(frame.sort_values([column, "_o"], ascending=[False, True])["model"])


# ------------------------------------------------------------------------------------ jobs
def _network(model: str):
    from tpred.zoo.hub import source_network

    return source_network(model, ZOO)


def _data(target: str, inner: bool):
    """The target's TuneData; `inner`: its training images split per class into halves.

    (Loaded per run: a weights file and a draw take milliseconds; the rendered images are
    cached in `tpred.zoo.hub`, which each worker process imports once.)
    """
    from tpred.tune import TuneData
    from tpred.zoo.hub import target_data

    td = target_data(f"digits:{target}", ZOO)
    y = td.y_train.numpy()
    if not inner:
        return TuneData(td.x_train, y, td.x_test, td.y_test.numpy())
    rng = np.random.default_rng([7, *target.encode()])
    first, second = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        first.append(idx[:len(idx) // 2])
        second.append(idx[len(idx) // 2:])
    a, b = np.concatenate(first), np.concatenate(second)
    return TuneData(td.x_train[a], y[a], td.x_train[b], y[b])


def run_job(job: dict, inner: bool = False) -> dict:
    """One fine-tuning run; `job` has target, seed, method, student, teachers, lr, tradeoff."""
    import torch

    from tpred.tune import TuneConfig, tune

    torch.set_num_threads(1)
    cfg = TuneConfig(method=job["method"], lr=job["lr"], tradeoff=job["tradeoff"],
                     seed=job["seed"], eval_every=0)
    teachers = [(m, _network(m)) for m in job["teachers"]]
    res = tune(_network(job["student"]), _data(job["target"], inner), cfg, teachers=teachers,
               name=job["student"])
    pi = [] if res.teachers is None else [round(float(p), 4) for p in res.teachers.pi]
    return {**job, "teachers": ",".join(job["teachers"]), "accuracy": res.test_accuracy,
            "seconds": res.seconds, "pi": ",".join(map(str, pi))}


def run_all(jobs: list[dict], n_jobs: int, *, inner: bool = False, desc: str) -> pd.DataFrame:
    """Run the jobs (grouped by target so each worker's data cache is reused)."""
    jobs = sorted(jobs, key=lambda j: (j["target"], j["student"], j["seed"]))
    out = Parallel(n_jobs=n_jobs, batch_size=4, return_as="generator")(
        delayed(run_job)(j, inner) for j in jobs)
    return pd.DataFrame(list(tqdm(out, total=len(jobs), desc=desc)))


def job(target, seed, method, student, teachers=(), *, lr, tradeoff=0.0, arm=""):
    return {"arm": arm, "target": target, "seed": int(seed), "method": method,
            "student": student, "teachers": tuple(teachers) if method == "btuning" else (),
            "lr": lr, "tradeoff": tradeoff if method == "btuning" else 0.0}


# ------------------------------------------------------------------------------- validation
def validate(tops: dict, n_jobs: int) -> tuple[dict, pd.DataFrame]:
    """Choose (lr) for fine-tuning and (lr, λ) for B-Tuning on inner splits of training images.

    Args:
        tops: target -> gnn ranking (seed 0), best first.
    """
    val_targets = [t for t in tops
                   if tuple(int(v) for v in _size(t)) == VALIDATION_SIZE] or list(tops)[:1]
    jobs = []
    for t in val_targets:
        s, teachers = tops[t][0], tops[t][:3]
        for lr in LR_GRID:
            jobs.append(job(t, 0, "finetune", s, lr=lr))
            jobs += [job(t, 0, "btuning", s, teachers, lr=lr, tradeoff=lam)
                     for lam in TRADEOFF_GRID]
    res = run_all(jobs, n_jobs, inner=True, desc="validation (inner splits)")
    table = (res.groupby(["method", "lr", "tradeoff"])["accuracy"]
             .agg(["mean", "std", "count"]).reset_index())
    best = {m: table[table["method"] == m].sort_values("mean", ascending=False).iloc[0]
            for m in ("finetune", "btuning")}
    chosen = {"finetune": {"lr": float(best["finetune"]["lr"])},
              "btuning": {"lr": float(best["btuning"]["lr"]),
                          "tradeoff": float(best["btuning"]["tradeoff"])}}
    return chosen, table


# -------------------------------------------------------------------------------- the bench
def build_jobs(target_list, seeds, gnn: pd.DataFrame, logme: pd.DataFrame, models,
               chosen: dict, oracle: list[str]) -> list[dict]:
    ft, bt = chosen["finetune"], chosen["btuning"]
    jobs: dict[tuple, dict] = {}

    def add(j):
        key = (j["target"], j["seed"], j["method"], j["student"], j["teachers"], j["lr"],
               j["tradeoff"])
        jobs.setdefault(key, {**j, "arm": ""})

    for t in target_list:
        by_logme = ranked(logme[logme["dataset"] == t], "value", models)
        for s in seeds:
            by_gnn = ranked(gnn[(gnn["dataset"] == t) & (gnn["seed"] == s)], "predicted", models)
            rng = np.random.default_rng([s, *t.encode()])
            add(job(t, s, "finetune", by_gnn[0], lr=ft["lr"]))
            add(job(t, s, "btuning", by_gnn[0], by_gnn[:3], lr=bt["lr"],
                    tradeoff=bt["tradeoff"]))
            if bt["tradeoff"] != REFERENCE_TRADEOFF:
                add(job(t, s, "btuning", by_gnn[0], by_gnn[:3], lr=bt["lr"],
                        tradeoff=REFERENCE_TRADEOFF))
            add(job(t, s, "btuning", by_logme[0], by_logme[:3], lr=bt["lr"],
                    tradeoff=bt["tradeoff"]))
            add(job(t, s, "finetune", models[int(rng.integers(len(models)))], lr=ft["lr"]))
            if t in oracle:
                for m in models:
                    add(job(t, s, "finetune", m, lr=ft["lr"]))
    return list(jobs.values())


def assign_arms(results: pd.DataFrame, target_list, seeds, gnn, logme, models,
                oracle, chosen: dict) -> pd.DataFrame:
    """One row per (arm, target, seed), looked up in the results of the unique runs."""
    ft = results[results["method"] == "finetune"].set_index(["target", "seed", "student"])
    bt = results[results["method"] == "btuning"].set_index(["target", "seed", "student",
                                                            "teachers", "tradeoff"])
    lam = chosen["btuning"]["tradeoff"]
    rows = []
    for t in target_list:
        by_logme = ranked(logme[logme["dataset"] == t], "value", models)
        best = None
        if t in oracle:
            mean = ft.loc[t]["accuracy"].groupby("student").mean()
            best = mean.reindex(models).idxmax()
        for s in seeds:
            by_gnn = ranked(gnn[(gnn["dataset"] == t) & (gnn["seed"] == s)], "predicted", models)
            rng = np.random.default_rng([s, *t.encode()])
            random_model = models[int(rng.integers(len(models)))]
            picks = {"a": ("ft", by_gnn[0], None, 0.0),
                     "b": ("bt", by_gnn[0], by_gnn[:3], lam),
                     "b'": ("bt", by_gnn[0], by_gnn[:3], REFERENCE_TRADEOFF),
                     "c": ("bt", by_logme[0], by_logme[:3], lam),
                     "d": ("ft", random_model, None, 0.0)}
            if best is not None:
                picks["e"] = ("ft", best, None, 0.0)
            for arm, (kind, student, teachers, tradeoff) in picks.items():
                if kind == "ft":
                    acc = ft.loc[(t, s, student), "accuracy"]
                else:
                    acc = bt.loc[(t, s, student, ",".join(teachers), tradeoff), "accuracy"]
                rows.append({"arm": arm, "name": ARMS[arm], "target": t, "seed": s,
                             "student": student, "teachers": ",".join(teachers or []),
                             "accuracy": float(acc)})
    out = pd.DataFrame(rows)
    meta = pd.DataFrame([{"target": t, "domain": t.split("_")[0],
                          "num_classes": int(_size(t)[0]),
                          "samples_per_class": int(_size(t)[1])} for t in target_list])
    return out.merge(meta, on="target")


def report(arms: pd.DataFrame, oracle: list[str]) -> str:
    lines = []
    wide = arms.pivot_table(index=["target", "seed"], columns="arm", values="accuracy")
    lines.append("arm                      targets  mean ± std (targets × seeds)   on the oracle "
                 "targets")
    for arm, name in ARMS.items():
        if arm not in wide:
            continue
        col = wide[arm].dropna()
        sub = wide.loc[wide.index.get_level_values(0).isin(oracle), arm].dropna()
        lines.append(f"({arm}) {name:<19} {col.index.get_level_values(0).nunique():>7}  "
                     f"{col.mean():.4f} ± {col.std(ddof=1):.4f} (n={len(col)})"
                     f"         {sub.mean():.4f} ± {sub.std(ddof=1):.4f}")
    lines.append("")
    for left, right in (("b", "a"), ("b'", "a"), ("c", "a"), ("b", "c")):
        diff = (wide[left] - wide[right]).dropna()
        per_target = diff.groupby(level=0).mean()
        lines.append(f"({left}) − ({right}): {diff.mean():+.4f} ± {diff.std(ddof=1):.4f} over "
                     f"{len(diff)} target×seed pairs; wins/ties/losses {int((diff > 0).sum())}/"
                     f"{int((diff == 0).sum())}/{int((diff < 0).sum())}; Wilcoxon p = "
                     f"{_wilcoxon(diff):.3g}; over {len(per_target)} per-target means "
                     f"{per_target.mean():+.4f}, p = {_wilcoxon(per_target):.3g}")
    if "e" in wide:
        for arm in ("a", "d"):
            regret = (wide["e"] - wide[arm]).dropna()
            lines.append(f"regret (e) − ({arm}): {regret.mean():.4f} ± {regret.std(ddof=1):.4f} "
                         f"over {len(regret)} oracle target×seed pairs")
    meta = arms.drop_duplicates("target").set_index("target")[
        ["samples_per_class", "num_classes", "domain"]]
    for left in ("b", "b'"):
        lines.append("")
        lines.append(f"({left}) − (a) by group (mean ± std over targets × seeds):")
        diff = (wide[left] - wide["a"]).dropna()
        frame = diff.rename("diff").reset_index().join(meta, on="target")
        for col in ("samples_per_class", "num_classes", "domain"):
            for value, part in frame.groupby(col):
                lines.append(f"  {col}={value}: {part['diff'].mean():+.4f} ± "
                             f"{part['diff'].std(ddof=1):.4f} (n={len(part)}, wins/losses "
                             f"{int((part['diff'] > 0).sum())}/{int((part['diff'] < 0).sum())})")
    return "\n".join(lines)


def _wilcoxon(diff: pd.Series) -> float:
    if (diff != 0).sum() < 1:
        return float("nan")
    return float(wilcoxon(diff.to_numpy()).pvalue)


def plot(arms: pd.DataFrame, path: Path) -> None:
    """Left: every arm's mean ± std. Right: per target, B-Tuning against fine-tuning."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wide = arms.pivot_table(index=["target", "seed"], columns="arm", values="accuracy")
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    present = [a for a in ARMS if a in wide]
    left.bar(range(len(present)), [wide[a].mean() for a in present],
             yerr=[wide[a].std(ddof=1) for a in present], capsize=4, color="#7aa6c2")
    left.set_xticks(range(len(present)),
                    [f"({a})\n{ARMS[a]}\nn={wide[a].notna().sum()}" for a in present],
                    fontsize=7)
    left.set_ylabel("test accuracy after full fine-tuning")
    left.set_ylim(0, 1)
    left.set_title("arms: mean ± std over targets × seeds", fontsize=9)
    per_target = arms.groupby(["target", "arm"])["accuracy"].mean().unstack()
    spc = arms.drop_duplicates("target").set_index("target")["samples_per_class"]
    for arm, colour in (("b", "tab:blue"), ("b'", "tab:red")):
        for size, marker in ((5, "o"), (20, "s")):
            part = per_target[spc.reindex(per_target.index).to_numpy() == size]
            right.scatter(part["a"], part[arm], marker=marker, color=colour, alpha=0.75,
                          label=f"({arm}) {ARMS[arm]}, {size} images per class")
    lo = float(np.nanmin(per_target[["a", "b", "b'"]].to_numpy())) - 0.02
    right.plot([lo, 1], [lo, 1], color="grey", lw=0.8)
    right.set_xlabel("(a) fine-tune the gnn's top-1")
    right.set_ylabel("B-Tuning: gnn's top-1 with the top-3 as teachers")
    right.set_title("per target (mean over seeds); above the line: B-Tuning better", fontsize=9)
    right.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--quick", action="store_true",
                        help="2 targets, seed 0, no oracle: a smoke run")
    parser.add_argument("--targets", nargs="+", default=None, help="override the target list")
    parser.add_argument("--rankings", type=Path, default=None,
                        help="reuse the gnn_rankings.csv an earlier run wrote (same seeds)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench_tuning")
    parser.add_argument("--plot", type=Path, default=ROOT / "bench" / "results" /
                        "bench_tuning.png")
    parser.add_argument("--replot", type=Path, default=None,
                        help="only print the report and redraw the plot from a results.csv")
    args = parser.parse_args()
    if args.replot is not None:
        arms = pd.read_csv(args.replot, keep_default_na=False, na_values=[""])
        oracle = sorted(set(arms.loc[arms["arm"] == "e", "target"]))
        print(report(arms, oracle))
        plot(arms, args.plot)
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    start = time.perf_counter()
    target_list = args.targets or (["noisy_4a_5", "shifted_8c_20"] if args.quick else targets())
    seeds = (0,) if args.quick else SEEDS
    oracle = [] if args.quick else [t for t in oracle_targets() if t in target_list]
    load = os.getloadavg()

    from tpred.zoo.hub import read_manifest, source_network

    plan, _ = read_manifest(ZOO)
    models = [s.model for s in plan.sources]
    tic = time.perf_counter()
    for m in tqdm(models, desc="source networks (load or re-train)"):
        source_network(m, ZOO)
    t_nets = time.perf_counter() - tic

    tic = time.perf_counter()
    if args.rankings is not None:
        gnn = pd.read_csv(args.rankings)
        if missing := sorted(set(seeds) - set(gnn["seed"])):
            raise SystemExit(f"{args.rankings}: no rankings for seed(s) {missing}")
    else:
        gnn = gnn_rankings(seeds, progress=True)
    args.out.mkdir(parents=True, exist_ok=True)
    gnn.to_csv(args.out / "gnn_rankings.csv", index=False)
    t_gnn = time.perf_counter() - tic
    scores = pd.read_csv(ZOO / "scores.csv")
    logme = scores[scores["metric"] == "logme"]

    tic = time.perf_counter()
    tops = {t: ranked(gnn[(gnn["dataset"] == t) & (gnn["seed"] == seeds[0])], "predicted",
                      models) for t in target_list}
    chosen, table = validate(tops, args.jobs)
    t_val = time.perf_counter() - tic
    print("\ninner validation (mean inner-validation accuracy over the targets with 20 images "
          "per class, seed 0):")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"chosen: finetune {chosen['finetune']}, btuning {chosen['btuning']} (T = 0.1, "
          f"200 steps of 32, fixed a priori)\n")

    tic = time.perf_counter()
    jobs = build_jobs(target_list, seeds, gnn, logme, models, chosen, oracle)
    results = run_all(jobs, args.jobs, desc="fine-tuning runs")
    t_runs = time.perf_counter() - tic
    arms = assign_arms(results, target_list, seeds, gnn, logme, models, oracle, chosen)
    args.out.mkdir(parents=True, exist_ok=True)
    results.to_csv(args.out / "runs.csv", index=False)
    arms.to_csv(args.out / "results.csv", index=False)
    table.to_csv(args.out / "validation.csv", index=False)
    plot(arms, args.plot)

    print(report(arms, oracle))
    total = time.perf_counter() - start
    print(f"\n{len(target_list)} targets × {len(seeds)} seeds; {len(results)} fine-tuning runs "
          f"(+{int(table['count'].sum())} validation runs) "
          f"with {args.jobs} workers; seconds: networks {t_nets:.0f}, gnn rankings {t_gnn:.0f}, "
          f"validation {t_val:.0f}, runs {t_runs:.0f}, total {total:.0f}; load average at "
          f"start {load[0]:.1f}, at end {os.getloadavg()[0]:.1f} (2 cores)")
    print(f"results in {args.out}, plot in {args.plot}")


if __name__ == "__main__":
    main()
