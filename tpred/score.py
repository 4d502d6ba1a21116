"""Compute transferability scores for every model x dataset feature file of a folder.

DIR/<model>/<dataset>.npz holds arrays `features` [N, D], `labels` [N] and optionally `probs`
[N, Cs] (source-head probabilities, needed by leep and nce). Writes the long table
`model,dataset,metric,value` to --out, skipping pairs already there (resume); pairs that cannot be
scored are listed with the reason in <out stem>.errors.csv while the rest completes.

One task per (model, dataset) pair, on local processes or a cluster (tpred.parallel); each
pair's scores are appended to --out as it finishes, so a lost worker loses only its pair and a
rerun of the same command resumes.

    python -m tpred.score --features feats/ --out scores.csv --metrics logme,hscore,ncti --jobs 4
    python -m tpred.score --features /shared/feats --out scores.csv --backend dask \
        --scheduler tcp://scheduler:8786
    python -m tpred.score --features /shared/feats --out scores.csv --backend ray --address auto
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from tpred import parallel
from tpred.scores.registry import ENHANCERS, METRICS
from tpred.scores.table import score_directory


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (bad input: message and status 2)."""
    parser = argparse.ArgumentParser(prog="python -m tpred.score", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=Path, required=True,
                        help="folder of <model>/<dataset>.npz files")
    parser.add_argument("--out", type=Path, required=True, help="scores CSV (created or resumed)")
    parser.add_argument("--metrics", default=",".join(METRICS),
                        help="comma-separated metric names (default: all base metrics: "
                             f"{','.join(METRICS)}); enhanced forms: "
                             + ", ".join(f"{e}+<metric>" for e in ENHANCERS))
    parser.add_argument("--seed", type=int, default=0, help="random_state of random metrics")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parallel.add_arguments(parser, jobs_help="parallel workers")
    args = parser.parse_args(argv)
    try:
        execution = parallel.options(args)
        with warnings.catch_warnings():  # the summary line below reports the errors file
            warnings.filterwarnings("ignore", message="score_directory: ")
            table = score_directory(args.features, args.out, args.metrics, **execution,
                                    random_state=args.seed, progress=not args.no_progress)
    except ValueError as err:  # bad input: one line naming the file or option; exit status 2
        parser.error(str(err))
    print(table.attrs["summary"], file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
