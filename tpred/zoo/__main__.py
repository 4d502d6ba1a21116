"""`python -m tpred.zoo build --out data/digits-zoo [--seed 0] [--small]`: build the embedded
default zoo (models, datasets, records, scores) on the CPU from scikit-learn's digits.

`python -m tpred.zoo synth --models M --datasets D --density p --out DIR [--seed S]`: a synthetic
zoo of any size from a planted model (tpred/zoo/synth.py), with DIR/config.yaml for
`python -m tpred.train --config DIR/config.yaml`."""

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
    _add_synth_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "synth":
        return _synth(args, parser)

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


def _add_synth_parser(sub: argparse._SubParsersAction) -> None:
    synth = sub.add_parser("synth", help="a synthetic zoo of any size from a planted model",
                           description="Write models.csv, datasets.csv, records.csv, scores.csv, "
                           "config.yaml and synth.json to --out (see tpred/zoo/synth.py).")
    synth.add_argument("--models", type=int, required=True, help="number of models M")
    synth.add_argument("--datasets", type=int, required=True, help="number of datasets D")
    synth.add_argument("--density", type=float, required=True,
                       help="fraction of the M x D pairs with a record, in (0, 1]")
    synth.add_argument("--out", type=Path, required=True, help="output folder")
    synth.add_argument("--seed", type=int, default=0, help="the one seed (default 0)")
    synth.add_argument("--noise", type=float, default=0.3,
                       help="record noise, standard deviation on the logit scale (default 0.3)")
    synth.add_argument("--score-corr", type=float, default=0.7,
                       help="within-dataset correlation of the strong proxy score with the "
                            "truth (default 0.7; the weak one gets half)")
    synth.add_argument("--no-text", action="store_true",
                       help="leave the labels text column out of config.yaml's features")


def _synth(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from tpred.zoo.synth import SynthSpec, write_synth_zoo

    try:
        spec = SynthSpec(args.models, args.datasets, args.density, seed=args.seed,
                         noise=args.noise, score_corr=args.score_corr, text=not args.no_text)
    except ValueError as err:  # bad option values: one line, exit status 2
        parser.error(str(err))
    zoo = write_synth_zoo(spec, args.out)
    shares = ", ".join(f"{k} {v:.2f}" for k, v in zoo.shares.items())
    print(f"{args.out}: {len(zoo.models)} models, {len(zoo.datasets)} datasets, "
          f"{len(zoo.records)} records, {len(zoo.scores)} scores; variance shares {shares}")
    print(f"train on it: python -m tpred.train --config {args.out / 'config.yaml'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
