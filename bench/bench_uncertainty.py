"""How well does the seed ensemble's std cover the truth? Held-out datasets (or models), calibrated.

For every fold of the cold-dataset protocol (`--protocol`: or cold-model, random-0.5, ...; seed
`--split-seed`), the method is fitted once per seed of the config on the fold's training pairs;
the members' mean and std predict the held-out pairs (with a breakdown by their kind,
`tpred.checkpoint.pair_kinds`: a new dataset, a new model, both, or a missing cell). The share
of held-out pairs with |truth - mean| <= 1 and 2 std is printed (a calibrated normal predictive
distribution gives 68.3 % and 95.4 %). Calibration, as `tpred.checkpoint`
does it for a checkpoint: per fold, a factor fitted on validation datasets carved from the fold's
*training* pairs (never its test pairs), applied to the test std.

    python bench/bench_uncertainty.py                       # the embedded default zoo
    python bench/bench_uncertainty.py --config configs/domainnet270.yaml --set text.encoder=hash
    python bench/bench_uncertainty.py --protocol cold-model          # new models

Without --config: configs/default.yaml if it exists, else data/digits-zoo with the feature
settings below, else DomainNet-270.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from tpred.checkpoint import (
    NORMAL_COVERAGE,
    calibrate,
    coverage,
    ensemble_predict,
    fit_members,
    level_spreads,
    pair_kinds,
)
from tpred.config import TrainConfig
from tpred.data import load_zoo
from tpred.evaluation.protocols import make_splits

ROOT = Path(__file__).resolve().parents[1]
#: the embedded default zoo's settings, used until configs/default.yaml exists
DIGITS = {
    "name": "digits",
    "data": {"root": "data/digits-zoo", "scores": "scores.csv"},
    "model_features": {"numeric": ["num_parameters", "flops", "feature_dim", "source_accuracy",
                                   "num_source_classes", "epochs"],
                       "log": ["num_parameters", "flops", "feature_dim"],
                       "categorical": ["architecture_family", "source_domain"],
                       "text": ["pretrain_dataset"]},
    "dataset_features": {"numeric": ["num_classes", "samples_per_class", "train_size"],
                         "log": ["num_classes", "samples_per_class", "train_size"],
                         "categorical": ["domain"], "text": ["labels", "domain"]},
}


def default_config() -> TrainConfig:
    """configs/default.yaml, else the digits zoo, else DomainNet-270."""
    if (ROOT / "configs" / "default.yaml").is_file():
        return TrainConfig.from_yaml(ROOT / "configs" / "default.yaml")
    if (ROOT / "data" / "digits-zoo" / "records.csv").is_file():
        return TrainConfig.from_dict(DIGITS, where="bench_uncertainty.DIGITS")
    return TrainConfig.from_yaml(ROOT / "configs" / "domainnet270.yaml")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE")
    parser.add_argument("--method", default="gnn")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--protocol", default="cold-dataset",
                        help="protocol of the held-out pairs (cold-dataset, cold-model, "
                             "random-0.5, ...)")
    parser.add_argument("--folds", type=int, default=None,
                        help="run only the first N folds (quick look)")
    parser.add_argument("--out", type=Path, help="CSV of per-pair mean, std, scale, truth")
    parser.add_argument("--by", default=None,
                        help="dataset metadata column to break the coverage down by (default: "
                             "the config's first categorical dataset feature)")
    parser.add_argument("--plot", type=Path, default=None,
                        help="PNG of the calibrated coverage per group and per std quintile")
    args = parser.parse_args()
    cfg = TrainConfig.from_yaml(args.config) if args.config else default_config()
    for assignment in args.overrides:
        cfg = cfg.override(assignment)
    zoo = load_zoo(cfg.data, ROOT, model_features=cfg.model_features,
                   dataset_features=cfg.dataset_features)
    print(f"{cfg.name}: {zoo!r}\nmethod {args.method}, seeds {list(cfg.seeds)}, "
          f"{args.protocol} (split seed {args.split_seed})")
    splits = make_splits(args.protocol, zoo, args.split_seed, cfg.protocol)[:args.folds]
    rows, start = [], time.perf_counter()
    for split in splits:
        members = fit_members(zoo, cfg, args.method, split.train)
        mean, std = ensemble_predict(members, split.test)
        cal = calibrate(zoo, cfg, args.method, split.train, members=members)
        scale, floor, weight = ((np.nan, 0.0, 0.0) if cal is None
                                else (cal.scale, cal.floor, cal.level_weight))
        level = level_spreads(zoo, cfg, split.train, split.test)
        kinds = pair_kinds(split.test, split.train)
        rows.append(split.test.assign(fold=split.fold, true=zoo.accuracy(split.test),
                                      mean=mean, std=std, scale=scale, floor=floor,
                                      level=level, level_weight=weight, kind=kinds,
                                      calibrated=std if cal is None
                                      else cal.apply(std, level)))
        print(f"  fold {split.fold}: {len(split.test)} test pairs, validation "
              f"{0 if cal is None else cal.num_pairs} pairs, scale {scale:.2f}, floor "
              f"{floor:.4f}, level weight {weight:g} ({time.perf_counter() - start:.0f} s)",
              flush=True)
    frame = pd.concat(rows, ignore_index=True)
    if args.out:
        frame.to_csv(args.out, index=False)
    report(frame)
    by = args.by or next(iter(cfg.dataset_features.categorical), None)
    tables = {}
    if by is not None:
        groups = zoo.datasets[by].astype(str).where(zoo.datasets[by].notna(), "(blank)")
        tables[by] = report_groups(frame, groups.reindex(frame["dataset"]).to_numpy(), by)
    if frame["kind"].nunique() > 1:
        tables["kind of pair"] = report_groups(frame, frame["kind"].to_numpy(), "kind of pair")
    if (frame["kind"] == "model").mean() > 0.5:     # new models: each one's coverage (no plot)
        report_groups(frame, frame["model"].to_numpy(), "held-out model")
    name = "calibrated std quintile"
    tables[name] = report_groups(frame, std_bins(frame["calibrated"].to_numpy()), name)
    if args.plot:
        plot_groups(tables, f"{cfg.name}: calibrated coverage, {args.protocol}", args.plot)
        print(f"plot: {args.plot}")
    print(f"total {time.perf_counter() - start:.0f} s")


def report(frame: pd.DataFrame) -> None:
    true, mean, std = frame["true"], frame["mean"], frame["std"]
    err = np.abs(true - mean)
    cal = frame["calibrated"]
    print(f"\n{len(frame)} held-out pairs; RMSE {np.sqrt(np.mean(err ** 2)):.4f}, "
          f"MAE {err.mean():.4f}; mean raw std {std.mean():.4f}; "
          f"Spearman(|error|, std) {spearmanr(err, std).statistic:.3f}")
    per_fold = frame.groupby("fold")[["scale", "floor", "level_weight"]].first()
    print("calibration (scale, floor, level weight) per fold: "
          + ", ".join(f"({s:.2f}, {f:.4f}, {w:g})" for s, f, w in
                      per_fold.itertuples(index=False)))
    table = pd.DataFrame({
        "target": [NORMAL_COVERAGE[1], NORMAL_COVERAGE[2]],
        "raw std": [coverage(true, mean, std, 1), coverage(true, mean, std, 2)],
        "calibrated": [coverage(true, mean, cal, 1), coverage(true, mean, cal, 2)],
    }, index=["within ±1 std", "within ±2 std"])
    print((100 * table).round(1).astype(str).add(" %").to_string())


def std_bins(std: np.ndarray, bins: int = 5) -> np.ndarray:
    """Each pair's quintile of `std` [P] as a label such as `3: 0.031-0.045` (the range of its
    bin), so that a wide std can be checked to cover as often as a narrow one."""
    edges = np.quantile(std, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, std, side="right") - 1, 0, bins - 1)
    return np.array([f"{b + 1}: {edges[b]:.3f}-{edges[b + 1]:.3f}" for b in which])


def report_groups(frame: pd.DataFrame, groups: np.ndarray, name: str) -> pd.DataFrame:
    """Calibrated coverage within ±1 / ±2 std, RMSE and mean std per group [P]: the pooled
    coverage can hide groups that are covered too often and others too rarely."""
    rows = {}
    for group, part in frame.groupby(groups, sort=True):
        true, mean, cal = part["true"], part["mean"], part["calibrated"]
        rows[group] = {"pairs": len(part), "datasets": part["dataset"].nunique(),
                       "RMSE": np.sqrt(np.mean((true - mean) ** 2)), "mean std": cal.mean(),
                       "±1 std %": 100 * coverage(true, mean, cal, 1),
                       "±2 std %": 100 * coverage(true, mean, cal, 2)}
    table = pd.DataFrame.from_dict(rows, orient="index")
    print(f"\ncalibrated coverage by {name}:")
    print(table.round({"RMSE": 4, "mean std": 4, "±1 std %": 1, "±2 std %": 1}).to_string())
    return table


def plot_groups(tables: dict[str, pd.DataFrame], title: str, path: Path) -> None:
    """One panel per breakdown (`report_groups` tables): the ±1 and ±2 std coverage of each
    group as bars, with the normal distribution's 68.3 % and 95.4 % as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tables), figsize=(5 * len(tables), 4), squeeze=False)
    for ax, (name, table) in zip(axes[0], tables.items(), strict=True):
        x = np.arange(len(table))
        ax.bar(x - 0.2, table["±1 std %"], 0.4, label="within ±1 std")
        ax.bar(x + 0.2, table["±2 std %"], 0.4, label="within ±2 std")
        for k, style in ((1, "--"), (2, ":")):
            ax.axhline(100 * NORMAL_COVERAGE[k], color="k", linestyle=style, linewidth=1)
        ax.set_xticks(x, table.index, rotation=30, ha="right")
        ax.set_ylim(0, 100)
        ax.set_ylabel("held-out pairs covered (%)")
        ax.set_title(f"by {name}")
    axes[0][0].legend(loc="lower left")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
