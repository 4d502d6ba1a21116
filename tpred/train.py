"""Fit and evaluate tpred's predictors on a model zoo under named protocols.

Reads a YAML config (default: configs/default.yaml, the embedded digits zoo), runs every method
under every protocol and seed, prints a table of method x protocol x metric (mean ± std over
seeds) and writes to <output_dir>/<name>/:

  metrics.json     {"config": {...}, "results": [{"method", "protocol", "metric", "mean", "std",
                   "n"}, ...], "runtime_s": {method: seconds}}
  metrics.csv      the same results, flat; metrics_per_seed.csv: one value per seed
  predictions.csv  method, protocol, seed, fold, model, dataset, true, predicted; appended as
                   each method and seed is scored (predictions.parquet with --predictions
                   parquet; with --no-plots no more than one method and seed is held in memory)
  plots/           predicted vs true per method; per-dataset Spearman per method
  checkpoint/      every method fitted on all known records once per seed (the ensemble behind
                   the std of a prediction): the config, the zoo's tables, the std calibration
                   and the gnn's weights, in files that run no code when read (JSON, CSV,
                   safetensors; read by `python -m tpred.predict` and `tpred.load`)
  config.yaml      the configuration actually used

A run folder that already holds files (an earlier run's) is refused, so that no stale file of
that run (a checkpoint `tpred.predict` would serve) survives beside the new ones; --overwrite
deletes it first (only a folder that tpred wrote: one holding config.yaml, metrics.json or a
checkpoint). A method that fails is reported (in the table, metrics.json "errors" and an `error`
row of metrics.csv) and the other methods complete; it is left out of the checkpoint.

With --fit-only (or `protocols: []` in the config) nothing is evaluated: every method is fitted
on all records and only checkpoint/ and config.yaml are written, e.g. to predict for new
datasets with `python -m tpred.predict`.

Metrics: pearson, spearman, kendall, weighted_tau, top1_regret (per held-out dataset, then
averaged), rmse, mae, global_pearson (all held-out pairs); for the paper protocol avg_pearson and
bucket_0_10 ... bucket_90_100 (bucket_0_10 is the paper's "Cold Start").
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tpred.config import TrainConfig, valid_keys

if TYPE_CHECKING:
    from tpred.data.zoo import Zoo

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "configs" / "default.yaml"
log = logging.getLogger("tpred.train")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tpred.train", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Config keys settable with --set: " + ", ".join(valid_keys(TrainConfig)))
    parser.add_argument("--config", type=Path, default=None,
                        help=f"YAML config (default: {DEFAULT_CONFIG.relative_to(REPO_ROOT)})")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a config entry (dotted key, YAML value), e.g. "
                             "--set output_dir=runs/x --set protocols=[cold-dataset] "
                             "--set gnn.hidden_channels=32; repeatable")
    parser.add_argument("--fit-only", action="store_true",
                        help="only fit every method on all records and write the checkpoint, "
                             "without evaluation (the same as `protocols: []` in the config)")
    parser.add_argument("--no-checkpoint", action="store_true",
                        help="skip fitting the final models on all records and saving them")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the run folder <output_dir>/<name> first if an earlier run "
                             "wrote it (without it, a folder holding files is refused)")
    parser.add_argument("--no-plots", action="store_true",
                        help="skip writing plots (then no prediction is held in memory beyond "
                             "one method and seed: they stream to the predictions file)")
    parser.add_argument("--predictions", choices=("csv", "parquet"), default="csv",
                        help="format of the predictions file, written as each method and seed "
                             "is scored: predictions.csv (default) or predictions.parquet "
                             "(needs pyarrow)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def load_config(path: Path | None, overrides: Sequence[str] = ()) -> TrainConfig:
    """The config of a run: the YAML file (or the default one), then each `--set` in order."""
    cfg = TrainConfig.from_yaml(path or DEFAULT_CONFIG)
    for assignment in overrides:
        cfg = cfg.override(assignment)
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(message)s", stream=sys.stderr)
    try:
        cfg = load_config(args.config, args.overrides)
        from tpred.data import load_zoo
        zoo = load_zoo(cfg.data, REPO_ROOT, model_features=cfg.model_features,
                       dataset_features=cfg.dataset_features)
    except ValueError as err:  # bad input: one line naming file, line and value; exit status 2
        parser.error(str(err))
    from tpred.evaluation.report import format_table, save_run
    from tpred.evaluation.run import evaluate, expand_methods

    log.info("%r", zoo)
    if gaps := score_gaps(zoo):
        log.warning("%s", gaps)
    if note := cross_validation_note(cfg, zoo):
        log.info("%s", note)
    start = time.perf_counter()
    out_dir = resolve_output(cfg)
    if (args.fit_only or not cfg.protocols) and args.no_checkpoint:
        parser.error("--no-checkpoint with --fit-only (or protocols: []) leaves nothing to do")
    try:
        prepare_run_folder(out_dir, overwrite=args.overwrite)
    except ValueError as err:
        parser.error(str(err))
    if args.fit_only or not cfg.protocols:
        try:
            methods = sorted(expand_methods(cfg.methods, zoo, cfg.score_metrics))
        except ValueError as err:
            parser.error(str(err))
        cfg.to_yaml(out_dir / "config.yaml")
        path, failed = fit_final(zoo, cfg, methods, out_dir, progress=not args.quiet)
        fitted = [m for m in methods if m not in failed]
        print(f"fitted {', '.join(fitted)} on all {len(zoo.records)} records (no evaluation) "
              f"in {time.perf_counter() - start:.1f}s; checkpoint {path}")
        _print_failures(failed, "fitting on all records")
        return 0
    from tpred.evaluation.sink import PredictionsWriter

    try:
        methods = sorted(expand_methods(cfg.methods, zoo, cfg.score_metrics))
        out_dir.mkdir(parents=True, exist_ok=True)
        with PredictionsWriter(out_dir / f"predictions.{args.predictions}") as sink:
            result = evaluate(zoo, cfg, progress=not args.quiet, sink=sink,
                              keep_predictions=not args.no_plots)
    except (ValueError, ImportError) as err:
        parser.error(str(err))
    save_run(result, out_dir, plots=not args.no_plots)
    failed: dict[str, str] = {}
    if not args.no_checkpoint:
        if ok := [m for m in methods if m not in result.errors]:
            failed = fit_final(zoo, cfg, ok, out_dir, progress=not args.quiet)[1]
    print(format_table(result.results))
    _print_failures(failed, "fitting on all records (left out of the checkpoint)")
    print("\nruntime (fit + predict, all splits): "
          + ", ".join(f"{k} {v:.1f}s" for k, v in result.runtime_s.items())
          + f"; total {time.perf_counter() - start:.1f}s")
    print(f"results in {out_dir}")
    return 0


def fit_final(zoo: Zoo, cfg: TrainConfig, methods: Sequence[str], out_dir: Path, *,
              progress: bool = True) -> tuple[Path | None, dict[str, str]]:
    """Fit every method on all known records (once per seed for seeded methods), calibrate
    their std on validation datasets carved from those records, and write the checkpoint.

    This is the most expensive step of a run after the evaluation itself: every method is
    fitted again, on every record, and the seeded ones calibrated with `CALIBRATION_FOLDS`
    more fits per seed.
    A method whose fitting or calibration raises is left out (and reported); the others are
    saved.

    Returns:
        (the checkpoint's path `out_dir/checkpoint/`, or None when every method failed;
        method -> `Type: message` of each method that failed).
    """
    from tqdm.auto import tqdm

    from tpred.checkpoint import CHECKPOINT_NAME, calibrate_all, fit_all, save_checkpoint

    fitted, calibration, failed = {}, {}, {}
    # one bar over the methods (fitted one at a time so that one failure loses nothing else)
    bar = tqdm(list(methods), desc="fit on all records", disable=not progress)
    for method in bar:
        bar.set_postfix_str(method)
        try:
            fitted.update(fit_all(zoo, cfg, [method], progress=False))
            calibration.update(calibrate_all(zoo, cfg, [method], ensembles=fitted,
                                             progress=False))
        except Exception as err:  # noqa: BLE001  (one method's failure must not lose the rest)
            fitted.pop(method, None)
            failed[method] = f"{type(err).__name__}: {' '.join(str(err).split())}"
            log.warning("method %s failed while fitting on all records (%s)", method,
                        failed[method])
    if not fitted:
        return None, failed
    return save_checkpoint(Path(out_dir) / CHECKPOINT_NAME, cfg, zoo, fitted, calibration), failed


#: files and folders only a tpred run writes: a folder holding one of them is a run folder
RUN_MARKERS = ("config.yaml", "metrics.json", "checkpoint", "checkpoint.pkl")


def prepare_run_folder(out_dir: Path, *, overwrite: bool = False) -> Path:
    """Make `out_dir` an empty run folder: create it, or (with `overwrite`) delete an earlier
    run's folder first, so that no file of that run is left beside the new one's.

    Raises:
        ValueError: the folder holds files and `overwrite` is False; or `overwrite` is True but
            the folder holds none of `RUN_MARKERS` (tpred deletes only what a run wrote).
    """
    import shutil

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"output folder {out_dir} is a file")
    if out_dir.is_dir() and (names := sorted(p.name for p in out_dir.iterdir())):
        shown = ", ".join(names[:5]) + (f", ... ({len(names)} entries)" if len(names) > 5
                                        else "")
        if not overwrite:
            raise ValueError(f"run folder {out_dir} already holds files of an earlier run "
                             f"({shown}); pass --overwrite to replace it, or choose another "
                             f"with --set name=... or --set output_dir=...")
        if not any((out_dir / m).exists() for m in RUN_MARKERS):
            raise ValueError(f"--overwrite: {out_dir} holds files ({shown}) but none that a "
                             f"tpred run writes ({', '.join(RUN_MARKERS)}); not deleting it")
        log.info("--overwrite: deleting the earlier run folder %s", out_dir)
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def score_gaps(zoo: Zoo) -> str | None:
    """One line on the (model, dataset, metric) cells of a zoo's scores table that are empty,
    None when every cell holds a score (or the zoo has no scores): lr, knn and gnn read a
    missing score as a standardised 0 (lr and gnn with a missing indicator) and a raw score
    method predicts NaN there, which a user whose scoring run stopped half-way would want to
    know before reading the results."""
    metrics = zoo.score_metrics
    if not metrics:
        return None
    num_pairs = zoo.num_models * zoo.num_datasets
    full, have = num_pairs * len(metrics), len(zoo.scores)
    if have >= full:
        return None
    unscored = num_pairs - len(zoo.scores.drop_duplicates(["model", "dataset"]))
    return (f"scores: {have} of {full} (model, dataset, metric) cells hold a score "
            f"({100 * have / full:.1f} %; metrics {list(metrics)}); {unscored} of "
            f"{num_pairs} pairs have none. lr, knn and gnn read a "
            f"missing score as 0 (lr and gnn with a missing indicator); a raw score method "
            f"predicts NaN there")


def cross_validation_note(cfg: TrainConfig, zoo: Zoo) -> str | None:
    """One line saying that the gnn's fits on this zoo cross-validate (`GNNConfig.
    cv_max_records`), None when none can: a user wonders why a zoo of a hundred records fits
    slower per record than a large one."""
    limit = cfg.gnn.cv_max_records
    known = len(zoo.known_pairs())
    if "gnn" not in cfg.methods or not limit or known > 2 * limit:
        return None
    return (f"gnn: a fit on at most {limit} training pairs (this zoo has {known} known pairs) "
            f"trains {cfg.gnn.cv_folds} networks, one per cross-validation fold, stopped "
            f"together on the pooled validation loss (about three times the time of a single "
            f"validation split; --set gnn.cv_max_records=0 turns it off)")


def _print_failures(failed: dict[str, str], when: str) -> None:
    for method, error in failed.items():
        print(f"FAILED {method} while {when}: {error}", file=sys.stderr)


def resolve_output(cfg: TrainConfig) -> Path:
    """<output_dir>/<name>; a relative output_dir is relative to the working directory."""
    return Path(cfg.output_dir) / cfg.name


if __name__ == "__main__":
    raise SystemExit(main())
