"""Ground-truth accuracies (records) of models on datasets.

    python -m tpred.finetune --features features/ --out records.csv       # linear probe
    python -m tpred.finetune --protocol finetune --models timm:resnet18,hf:facebook/dinov2-small \\
        --data images/ --out records-finetune.csv --epochs 3 --lr 1e-4 --batch-size 32

`linear-probe` (default) fits a logistic-regression head (C=1, standardised features) on the
train features of every FEATURES/<model>/<dataset>.npz that `python -m tpred.extract` wrote and
records the accuracy on its test features. `finetune` trains each model's network with a new
linear head for a fixed budget (AdamW, cross-entropy, seeded) on the train split of each data
source and records the test accuracy.

The records file has the columns model, dataset, accuracy (what `tpred.train` reads), protocol,
train_size, test_size, seconds, settings. Pairs already recorded under the protocol are skipped
(resume); pairs that fail are rows of <out stem>.errors.csv with the reason, and the rest goes
on (exit status 1 when a pair failed). Keep one file per protocol for `tpred.train` (a pair
recorded twice is a duplicate there).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from tpred import parallel
from tpred.extract import options

PROG = "python -m tpred.finetune"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", choices=("linear-probe", "finetune"),
                        default="linear-probe")
    parser.add_argument("--out", type=Path, required=True,
                        help="records CSV (created, or resumed)")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo pairs already recorded under the protocol")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    probe = parser.add_argument_group("linear-probe")
    probe.add_argument("--features", type=Path,
                       help="folder of <model>/<dataset>.npz files from tpred.extract")
    probe.add_argument("--C", type=float, default=1.0,
                       help="inverse regularisation of the logistic regression (default 1)")
    tune = parser.add_argument_group("finetune (the fixed budget)")
    tune.add_argument("--epochs", type=int, default=3)
    tune.add_argument("--lr", type=float, default=1e-4, help="AdamW learning rate")
    tune.add_argument("--weight-decay", type=float, default=0.01)
    options.add_arguments(parser, required=False)
    parallel.add_arguments(parser, jobs_help="parallel workers, one (model, dataset) pair each")
    parser.set_defaults(batch_size=32)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    from tpred.extract import MissingExtraError
    from tpred.finetune import FinetuneSettings, finetune, probe_directory

    try:
        if args.protocol == "linear-probe":
            if args.features is None:
                raise ValueError("--protocol linear-probe needs --features DIR (the folder "
                                 "tpred.extract wrote)")
            if args.models or args.models_file or args.data:
                raise ValueError("--protocol linear-probe reads --features; --models/--data "
                                 "are for --protocol finetune")
            counts = probe_directory(args.features, args.out, C=args.C,
                                     overwrite=args.overwrite, progress=not args.no_progress)
        else:
            if not (args.models or args.models_file) or not args.data:
                raise ValueError("--protocol finetune needs --models (or --models-file) and "
                                 "--data")
            specs, names = options.models(args)
            settings = FinetuneSettings(epochs=args.epochs, lr=args.lr,
                                        batch_size=args.batch_size,
                                        weight_decay=args.weight_decay, seed=args.seed,
                                        extract=options.settings(args))
            counts = finetune(specs, args.data, args.out, names=names,
                              dataset_names=options.split_list(args.data_names),
                              settings=settings, overwrite=args.overwrite,
                              progress=not args.no_progress, **parallel.options(args))
    except (ValueError, MissingExtraError) as err:  # bad input: one line, exit status 2
        parser.error(" ".join(str(err).split()))
    from tpred.finetune.records import errors_path

    print(f"{args.protocol}: " + ", ".join(f"{v} {k.replace('_', ' ')}"
                                           for k, v in counts.items())
          + f" -> {args.out}"
          + (f" (errors in {errors_path(args.out)})" if counts["failed"] else ""),
          file=sys.stderr)
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
