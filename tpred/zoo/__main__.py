"""`python -m tpred.zoo build --out data/digits-zoo [--seed 0] [--small]`: build the embedded
default zoo (models, datasets, records, scores) on the CPU from scikit-learn's digits."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tpred.zoo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="train the source models, fit the target heads, score",
                           description="Build the digits zoo: models.csv, datasets.csv, "
                           "records.csv, scores.csv, scores.errors.csv and README.md in --out; "
                           "feature files in --features.")
    build.add_argument("--out", type=Path, required=True, help="output folder")
    build.add_argument("--seed", type=int, default=0, help="the one seed (default 0)")
    build.add_argument("--small", action="store_true",
                       help="a few models and targets (seconds; for tests)")
    build.add_argument("--features", type=Path, default=None,
                       help="folder of the <model>/<dataset>.npz feature files "
                       "(default <out>/features)")
    build.add_argument("--metrics", default=None,
                       help="comma-separated tpred.scores metrics (default: every one)")
    build.add_argument("--jobs", type=int, default=1, help="parallel workers for the scores")
    build.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    args = parser.parse_args(argv)

    from tpred.zoo.build import build_zoo
    from tpred.zoo.report import informativeness

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    metrics = None if args.metrics is None else [m for m in args.metrics.split(",") if m]
    try:
        tables = build_zoo(args.out, seed=args.seed, small=args.small,
                           features_dir=args.features, metrics=metrics, jobs=args.jobs,
                           progress=not args.no_progress)
    except ValueError as err:  # bad option values: one line, exit status 2
        parser.error(str(err))
    info = informativeness(tables)
    print(f"{args.out}: {len(tables.models)} models, {len(tables.datasets)} datasets, "
          f"{len(tables.records)} records, {len(tables.scores)} scores, "
          f"{len(tables.errors)} score errors; {tables.seconds['total']:.0f} s")
    print(f"accuracy median {info.accuracy_median:.3f}, per-dataset std median "
          f"{info.std_median:.3f}, best model {info.overall_best} beaten on "
          f"{100 * info.share_best_differs:.0f} % of datasets, LogME Spearman "
          f"{info.logme_spearman:.3f} / weighted tau {info.logme_weighted_tau:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
