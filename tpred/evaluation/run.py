"""Run every predictor under every protocol and seed; collect predictions, metrics and timings."""

from __future__ import annotations

import logging
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from tpred.config import TrainConfig
from tpred.data.zoo import Zoo
from tpred.errors import UndefinedMetricWarning
from tpred.evaluation.metrics import paper_matrices, paper_metrics, summarize
from tpred.evaluation.protocols import Split, expand_protocols, make_splits
from tpred.evaluation.sink import PREDICTION_COLUMNS, PredictionsWriter
from tpred.models import make_predictor

log = logging.getLogger(__name__)

#: metrics that compare predicted with true accuracy on their scale; meaningless for a raw score
SCALE_METRICS = ("rmse", "mae")


def expand_methods(methods: tuple[str, ...] | list[str], zoo: Zoo,
                   score_metrics: tuple[str, ...] | None = None) -> list[str]:
    """`score` becomes one `score:<metric>` per metric used; other names pass through.

    Raises:
        ValueError: `score:<metric>` names a metric absent from the zoo's scores table.
    """
    metrics = list(score_metrics) if score_metrics is not None else zoo.score_metrics
    out: list[str] = []
    for name in methods:
        if name == "score":
            out += [f"score:{m}" for m in metrics]
        else:
            if name.startswith("score:") and name[6:] not in zoo.score_metrics:
                raise ValueError(f"method {name!r}: metric {name[6:]!r} is not in the scores "
                                 f"table; it has {zoo.score_metrics}")
            out.append(name)
    return list(dict.fromkeys(out))


@dataclass
class RunResult:
    """What `evaluate` produced.

    Attributes:
        config: the configuration used.
        predictions: one row per predicted test pair: method, protocol, seed, fold, model,
            dataset, true, predicted.
        per_seed: one row per (method, protocol, seed, metric): value.
        results: one row per (method, protocol, metric): mean, std (sample, ddof=1, as
            pandas in the SCG4Trf script; 0 for one seed), n (number of seeds with a defined
            value), pairs (held-out pairs the figure covers, per seed: fewer than the protocol's
            for `score:<m>` when some pairs lack `m`); a failed method has one row per protocol
            with metric `error`, NaN figures and its error message in `error`.
        runtime_s: seconds spent fitting and predicting, per method, summed over splits.
        predictions_path: the file the predictions were streamed to (`evaluate`'s `sink`),
            else None.
        errors: method -> where and why it failed (`protocol seed s fold f: Type: message`).
    """

    config: TrainConfig
    predictions: pd.DataFrame
    per_seed: pd.DataFrame
    results: pd.DataFrame
    runtime_s: dict[str, float] = field(default_factory=dict)
    predictions_path: Path | None = None
    errors: dict[str, str] = field(default_factory=dict)


def evaluate(zoo: Zoo, cfg: TrainConfig, *, progress: bool = True,
             sink: PredictionsWriter | None = None, keep_predictions: bool = True) -> RunResult:
    """Fit and evaluate every method of `cfg` under every protocol and seed of `cfg`.

    Every split's predictor is fitted on the split's training pairs only; metrics are computed
    per (method, protocol, seed) over the union of that seed's folds (for `cold-model`, each
    dataset then has every model predicted, each from the fold that held it out).

    Predictions stream: only the held-out records of one (method, protocol, seed) are in memory
    at a time (never an M x D matrix, except the paper protocol's small one); each such frame
    goes to `sink` as soon as it is scored, and is kept for `RunResult.predictions` only with
    `keep_predictions` (else that frame is empty, with the columns).

    Raises:
        ValueError: no protocols, an unknown protocol or method, a zoo too small for a protocol.
    """
    methods = expand_methods(cfg.methods, zoo, cfg.score_metrics)
    protocols = expand_protocols(cfg.protocols, cfg.protocol)
    if not protocols:
        raise ValueError("evaluate: the config has no protocols to evaluate (protocols: []); "
                         "`python -m tpred.train --fit-only` fits without evaluating")
    jobs = [(p, s) for p in protocols
            for s in (cfg.protocol.paper_seeds if p == "paper" else cfg.seeds)]
    runtime: dict[str, float] = defaultdict(float)
    frames: list[pd.DataFrame] = []
    rows: list[dict] = []
    errors: dict[str, str] = {}
    bar = tqdm(jobs, desc="evaluate", unit="seed", disable=not progress)
    for protocol, seed in bar:
        bar.set_postfix_str(f"{protocol} seed {seed}")
        splits = make_splits(protocol, zoo, seed, cfg.protocol)
        for method in methods:
            if method in errors:
                continue
            preds = []
            try:
                for split in splits:
                    start = time.perf_counter()
                    predictor = make_predictor(method, cfg, seed).fit(zoo, split.train)
                    predicted = np.asarray(predictor.predict(split.test), dtype=np.float64)
                    runtime[method] += time.perf_counter() - start
                    preds.append(split.test.assign(
                        method=method, protocol=protocol, seed=seed, fold=split.fold,
                        true=zoo.accuracy(split.test), predicted=predicted))
            except Exception as err:  # noqa: BLE001  (one method's failure must not end the run)
                errors[method] = (f"{protocol} seed {seed} fold {split.fold}: "
                                  f"{type(err).__name__}: {' '.join(str(err).split())}")
                log.warning("method %s failed (%s); the other methods go on", method,
                            errors[method])
                continue
            frame = pd.concat(preds, ignore_index=True)[PREDICTION_COLUMNS]
            del preds
            if sink is not None:
                sink.write(frame)
            if keep_predictions:
                frames.append(frame)
            covered = int(np.isfinite(frame["predicted"].to_numpy()).sum())
            for metric, value in _score_seed(zoo, protocol, splits, frame, method).items():
                rows.append({"method": method, "protocol": protocol, "seed": seed,
                             "metric": metric, "value": value, "pairs": covered})
    predictions = (pd.concat(frames, ignore_index=True) if frames
                   else pd.DataFrame(columns=PREDICTION_COLUMNS))
    per_seed = pd.DataFrame(rows, columns=["method", "protocol", "seed", "metric", "value",
                                           "pairs"])
    results = aggregate(per_seed)
    if errors:
        failed = pd.DataFrame([{"method": m, "protocol": p, "metric": "error", "mean": np.nan,
                                "std": np.nan, "n": 0, "pairs": 0, "error": e}
                               for m, e in errors.items() for p in protocols])
        results = pd.concat([results.assign(error=""), failed], ignore_index=True)
    return RunResult(cfg, predictions, per_seed, results, dict(runtime),
                     sink.path if sink is not None else None, errors)


def _score_seed(zoo: Zoo, protocol: str, splits: list[Split], frame: pd.DataFrame,
                method: str) -> dict[str, float]:
    """Metrics of one (method, protocol, seed) from its predictions over all folds.

    Pairs predicted as NaN (no score `m` for `score:<m>`) are left out; in the paper protocol,
    whose metrics need every cell of the matrix, they make the metrics undefined (NaN).
    """
    if protocol != "paper":
        frame = frame[np.isfinite(frame["predicted"].to_numpy())]
    with warnings.catch_warnings():
        # A dataset with fewer than 2 held-out models has no correlation; the NaN is skipped
        # in the average and counted in n, so the warning would only repeat itself per seed.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        if protocol == "paper":
            (split,) = splits
            return paper_metrics_for_split(zoo, split, frame)
        values = summarize(frame)
    if method.startswith("score:"):
        values = {k: v for k, v in values.items() if k not in SCALE_METRICS}
    return values


def paper_metrics_for_split(zoo: Zoo, split: Split, frame: pd.DataFrame) -> dict[str, float]:
    """The paper protocol's metrics: known cells filled with truth, scored cells predicted.

    Rows and columns follow the split's own order (the original matrix's), as the released
    script's column sort breaks ties by it.
    """
    train = split.train.assign(true=zoo.accuracy(split.train))
    matrices = paper_matrices(frame, train, split.context["models"], split.context["datasets"])
    return paper_metrics(*matrices)


def aggregate(per_seed: pd.DataFrame) -> pd.DataFrame:
    """mean, std (ddof=1; 0 for one seed), n and pairs over seeds per (method, protocol, metric).

    NaN values (a metric undefined for a seed) are skipped and not counted in n. `pairs` is the
    mean number of held-out pairs per seed that the figure covers (rounded; only when
    `per_seed` has a `pairs` column).
    """
    grouped = per_seed.groupby(["method", "protocol", "metric"], sort=False)
    out = grouped["value"].agg(
        mean="mean", std=lambda v: float(v.std(ddof=1)) if v.count() > 1 else 0.0, n="count")
    out.loc[out["n"] == 0, "std"] = np.nan
    if "pairs" in per_seed.columns:
        out["pairs"] = grouped["pairs"].mean().round().astype(int)
    return out.reset_index()
