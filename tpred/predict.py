"""Predict transfer accuracy for new models and datasets with a trained run, and rank the models.

Loads <run>/checkpoint/ (written by `python -m tpred.train`), adds the new models and datasets
to the run's zoo inductively (their metadata goes through the run's fitted featurizers; their
scores become score edges and their known records record edges of the gnn's graph; nothing is
refitted), predicts every requested pair with the chosen method's seed ensemble, and writes:

  <out>                      model, dataset, predicted, std   (one row per predicted pair)
  <out stem>.ranking.csv     dataset, rank, model, predicted, std, known   (top-K per dataset;
                             a recorded pair enters at its accuracy with known=True, std 0)

and prints the rankings. Default pairs: each new dataset x every model (old and new) and each
new model x every dataset, except pairs with a record. `std` is the spread of the seeds' models
(the gnn's `cfg.seeds`) through the run's calibration (fitted on validation datasets carved from
the training records; it widens the std where the levels of the dataset's most similar training
datasets disagree); it is empty (NaN) for single-member methods (additive, lr, mf, knn).

Input files (CSV): --models and --datasets as models.csv/datasets.csv (the columns the run's
features use are required; unknown columns are ignored with a warning; an unseen category gives
zero one-hot features, with a warning); --scores long `model,dataset,metric,value` (metrics the
run was not trained with are ignored with a warning); --records `model,dataset,accuracy` (or a
wide matrix); --pairs `model,dataset`. A new id equal to one of the run's ids is an error.

Reading a checkpoint runs no code from its files; an old pickle checkpoint (`checkpoint.pkl`)
does when unpickled, so it is read only with --trust (for a file you made or trust).

What was loaded (checkpoint path, when it was written, methods, zoo size, and the sha256 of
its config and data) is printed first (not with --quiet).

Bad input prints one line `python -m tpred.predict: error: <file>, line <n>, column <c>: ...`
and exits with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

PROG = "python -m tpred.predict"
log = logging.getLogger("tpred.predict")


#: --trust of the commands that only read a run (the extracting ones say more, see recommend)
TRUST_HELP = ("allow an old pickle checkpoint (checkpoint.pkl): unpickling runs the code it "
              "holds, so only for a file you made or trust")


def add_run_arguments(parser: argparse.ArgumentParser, *, run_help: str,
                      trust_help: str = TRUST_HELP) -> None:
    """`--run RUN` (required) and `--trust`: the options of every command that loads a run
    (tpred.predict, tpred.tune, tpred.recommend)."""
    parser.add_argument("--run", type=Path, required=True, help=run_help)
    parser.add_argument("--trust", action="store_true", help=trust_help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, run_help="run folder (holds checkpoint/) or a checkpoint folder")
    parser.add_argument("--models", type=Path, help="CSV of new models (metadata)")
    parser.add_argument("--datasets", type=Path, help="CSV of new datasets (metadata)")
    parser.add_argument("--scores", type=Path,
                        help="CSV of scores of new pairs: model,dataset,metric,value")
    parser.add_argument("--records", type=Path,
                        help="CSV of known accuracies of new pairs: model,dataset,accuracy")
    parser.add_argument("--pairs", type=Path,
                        help="CSV of pairs to predict: model,dataset (default: every pair of a "
                             "new node without a record)")
    parser.add_argument("--method", default=None,
                        help="method of the run to predict with (default: gnn if the run has "
                             "it, else its first method)")
    parser.add_argument("--top-k", type=int, default=5,
                        help="models per dataset in the ranking (0: all; default 5)")
    parser.add_argument("--raw-std", action="store_true",
                        help="report the ensemble's std without the run's calibration")
    parser.add_argument("--out", type=Path, required=True,
                        help="predictions CSV to write; the ranking goes to <stem>.ranking.csv")
    parser.add_argument("--quiet", action="store_true", help="print no rankings")
    return parser


def ranking_path(out: Path) -> Path:
    """Where the ranking of `--out` goes: `<stem>.ranking.csv` beside it."""
    return out.with_name(f"{out.stem}.ranking.csv")


def level_line(moves: pd.Series, pairs: pd.DataFrame) -> str:
    """One line saying which predicted datasets without records the gnn moved toward the level
    of their most similar datasets (`Run.level_moves`, `gnn.level_after`), by how much, and
    which it did not (a blank metadata cell); "" when none of `pairs`' datasets is concerned."""
    moves = moves[moves.index.isin(pairs["dataset"])]
    if not len(moves):
        return ""
    moved = moves.dropna()
    parts = []
    if len(moved):
        parts.append(f"{len(moved)} dataset(s) without records moved toward the level of their "
                     f"most similar datasets (gnn.level_after): "
                     + ", ".join(f"{d} {v:+.3f}" for d, v in moved.items()))
    if len(kept := moves.index[moves.isna()]):
        parts.append(f"not moved, a metadata cell is blank: {', '.join(kept)}")
    return "; ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    from tpred.api import format_rankings, load, rank_models

    try:
        run = load(args.run, trust=args.trust)
        if not args.quiet:
            print(run.describe())
        method = run.resolve_method(args.method)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ext = run.extend(args.models, args.datasets, args.scores, args.records)
            pairs = run.resolve_pairs(ext, args.pairs)
        for w in caught:
            print(f"{PROG}: warning: {w.message}", file=sys.stderr)
        predictions = run.predict_extension(ext, pairs, method, calibrated=not args.raw_std)
    except (ValueError, TypeError) as err:  # bad input: one line, exit status 2
        message = " ".join(str(err).split())
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    ranking = rank_models(predictions, ext.zoo, args.top_k)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    predictions.to_csv(args.out, index=False)
    ranking.to_csv(ranking_path(args.out), index=False)
    if not args.quiet:
        std_note = ("raw ensemble std" if args.raw_std or method not in run.calibration
                    else f"std calibrated: {run.calibration[method].describe()}")
        print(f"{method}: {len(predictions)} pair(s) predicted ({std_note}); top "
              f"{args.top_k or 'all'} per dataset:\n")
        if line := level_line(run.level_moves(ext, method), pairs):
            print(line + "\n")
        print(format_rankings(ranking, new_datasets=ext.new_datasets))
        print(f"\npredictions in {args.out}, rankings in {ranking_path(args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
