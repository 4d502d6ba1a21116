"""Rank, then tune: fine-tune the model a trained run ranks best for a dataset, with B-Tuning.

    python -m tpred.tune --run RUN --dataset NAME [--data SOURCE] [--teachers K]
        [--student MODEL|top1] [--method btuning|finetune] --out DIR

The ranking comes from the run (`tpred.load(RUN)`; its gnn by default): for a dataset of the run,
recorded pairs at their accuracy and the others predicted; a new dataset (not in the run) needs
--data, and its metadata row is measured from the data (or read from --datasets) and predicted
inductively, as `python -m tpred.predict` does. The student is the top-ranked model (or
--student), the teachers the top K. B-Tuning (You et al., JMLR 2022): cross-entropy of a new head
plus λ · MSE between the student's LogME projection f_s m_sᵀ and the teachers' π-weighted one,
π = softmax(LogME / T); `--method finetune` is plain fine-tuning with the same budget.

Models are re-created from their specs through `tpred.extract.load_model` (a `spec` column of
the run's models table, e.g. timm:resnet18 or hf:<folder>; `digits:<model>` for a digits zoo)
and each reads the data through its own preprocessing. --data is any `tpred.extract` source with
a test split (an image folder with train/ and test/, a `datasets` folder, a text table with a
split column) or `digits:<dataset>` (the default for a dataset of a digits-zoo run); a new
dataset whose metadata the run needs cannot be measured from the data (e.g. its domain) takes
its row from --datasets. A teacher that cannot be loaded or whose features cannot be
extracted is skipped with a warning (π renormalised over the others).

Writes into --out: student.safetensors (`backbone.<key>`: the tuned network's own state dict,
its unused source head included; `head.*`: the new head), tune.json (student,
teachers with π and LogME, the ranking, the learning curve, test accuracy, seconds, settings) and
curve.png (the learning curve). Bad input: one line `python -m tpred.tune: error: ...`, exit
status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

PROG = "python -m tpred.tune"


def build_parser() -> argparse.ArgumentParser:
    from tpred.predict import add_run_arguments
    from tpred.tune.fit import TuneConfig

    d = TuneConfig()
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, run_help="run folder of `python -m tpred.train` (holds checkpoint/)")
    parser.add_argument("--dataset", required=True,
                        help="dataset id: one of the run's, or a new one (then give --data)")
    parser.add_argument("--data", default=None,
                        help="data source: an image folder (train/, test/), a datasets folder, "
                             "a text table, or digits:<dataset> (the default for a dataset of "
                             "a digits-zoo run)")
    parser.add_argument("--teachers", type=int, default=3, metavar="K",
                        help="B-Tuning teachers: the top K of the ranking (default 3)")
    parser.add_argument("--student", default="top1", metavar="MODEL|top1",
                        help="the model to tune (default top1: the best of the ranking)")
    parser.add_argument("--method", choices=["btuning", "finetune"], default=d.method,
                        help=f"B-Tuning or plain fine-tuning, same budget (default {d.method})")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--predictor", default=None,
                        help="the run's method that ranks (default gnn)")
    parser.add_argument("--datasets", type=Path, default=None,
                        help="CSV with the new dataset's metadata row (default: measured from "
                             "the data)")
    parser.add_argument("--scores", type=Path, default=None,
                        help="CSV of the new dataset's scores (model,dataset,metric,value)")
    parser.add_argument("--steps", type=int, default=d.steps,
                        help=f"optimiser steps, the fixed budget (default {d.steps})")
    parser.add_argument("--batch-size", type=int, default=d.batch_size,
                        help=f"default {d.batch_size}")
    parser.add_argument("--lr", type=float, default=d.lr,
                        help=f"backbone learning rate; the head gets {d.head_lr_mult:g}x "
                             f"(default {d.lr:g})")
    parser.add_argument("--optimizer", choices=["sgd", "adamw"], default=d.optimizer,
                        help=f"default {d.optimizer} (Nesterov momentum {d.momentum:g})")
    parser.add_argument("--tradeoff", type=float, default=d.tradeoff,
                        help=f"lambda of the B-Tuning term (default {d.tradeoff:g})")
    parser.add_argument("--temperature", type=float, default=d.temperature,
                        help=f"T of pi = softmax(LogME / T) (default {d.temperature:g})")
    parser.add_argument("--eval-every", type=int, default=d.eval_every,
                        help=f"learning-curve point every N steps (default {d.eval_every})")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"default {d.seed}")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    import tpred
    from tpred.tune.fit import TuneConfig
    from tpred.tune.pipeline import tune_from_run, write_outputs

    try:
        cfg = TuneConfig(method=args.method, steps=args.steps, batch_size=args.batch_size,
                         lr=args.lr, optimizer=args.optimizer, tradeoff=args.tradeoff,
                         temperature=args.temperature, eval_every=args.eval_every,
                         seed=args.seed)
        run = tpred.load(args.run, trust=args.trust)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            done = tune_from_run(run, args.dataset, data=args.data, num_teachers=args.teachers,
                                 student=args.student, cfg=cfg, method=args.predictor,
                                 datasets=args.datasets, scores=args.scores,
                                 progress=not args.quiet)
        for w in caught:
            print(f"{PROG}: warning: {w.message}", file=sys.stderr)
    except (ValueError, TypeError) as err:  # bad input: one line, exit status 2
        print(f"{PROG}: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    paths = write_outputs(done, cfg, args.out)
    res = done.result
    print(f"{cfg.method}: student {done.student} on {done.dataset} "
          f"({len(done.target.data.train)} training items, {len(res.classes)} classes)")
    if res.teachers is not None:
        print("teachers: " + ", ".join(f"{n} (LogME {s:.3f}, pi {p:.3f})" for n, s, p in
                                       zip(res.teachers.names, res.teachers.scores,
                                           res.teachers.pi, strict=True)))
    print(f"test accuracy {res.test_accuracy:.4f} after {cfg.steps} steps "
          f"({res.seconds:.1f} s); outputs: " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
