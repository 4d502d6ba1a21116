"""Run every predictor under every protocol and seed; collect predictions, metrics and timings."""

from __future__ import annotations

import logging
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from tpred.config import TrainConfig
from tpred.data.zoo import Zoo
from tpred.errors import UndefinedMetricWarning
from tpred.evaluation.metrics import paper_matrices, paper_metrics, summarize
from tpred.evaluation.protocols import Split, expand_protocols, make_splits
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
            pandas in the SCG4Trf script; 0 for one seed), n (number of seeds with a defined value).
        runtime_s: seconds spent fitting and predicting, per method, summed over splits.
    """

    config: TrainConfig
    predictions: pd.DataFrame
    per_seed: pd.DataFrame
    results: pd.DataFrame
    runtime_s: dict[str, float] = field(default_factory=dict)


def evaluate(zoo: Zoo, cfg: TrainConfig, *, progress: bool = True) -> RunResult:
    """Fit and evaluate every method of `cfg` under every protocol and seed of `cfg`.

    Every split's predictor is fitted on the split's training pairs only; metrics are computed
    per (method, protocol, seed) over the union of that seed's folds (for `cold-model`, each
    dataset then has every model predicted, each from the fold that held it out).

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
    bar = tqdm(jobs, desc="evaluate", unit="seed", disable=not progress)
    for protocol, seed in bar:
        bar.set_postfix_str(f"{protocol} seed {seed}")
        splits = make_splits(protocol, zoo, seed, cfg.protocol)
        for method in methods:
            preds = []
            for split in splits:
                start = time.perf_counter()
                predictor = make_predictor(method, cfg, seed).fit(zoo, split.train)
                predicted = np.asarray(predictor.predict(split.test), dtype=np.float64)
                runtime[method] += time.perf_counter() - start
                preds.append(split.test.assign(
                    method=method, protocol=protocol, seed=seed, fold=split.fold,
                    true=zoo.accuracy(split.test), predicted=predicted))
            frame = pd.concat(preds, ignore_index=True)
            frames.append(frame)
            for metric, value in _score_seed(zoo, protocol, splits, frame, method).items():
                rows.append({"method": method, "protocol": protocol, "seed": seed,
                             "metric": metric, "value": value})
    predictions = pd.concat(frames, ignore_index=True)[
        ["method", "protocol", "seed", "fold", "model", "dataset", "true", "predicted"]]
    per_seed = pd.DataFrame(rows, columns=["method", "protocol", "seed", "metric", "value"])
    return RunResult(cfg, predictions, per_seed, aggregate(per_seed), dict(runtime))


def _score_seed(zoo: Zoo, protocol: str, splits: list[Split], frame: pd.DataFrame,
                method: str) -> dict[str, float]:
    """Metrics of one (method, protocol, seed) from its predictions over all folds."""
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
    """mean, std (ddof=1; 0 for one seed) and n over seeds per (method, protocol, metric).

    NaN values (a metric undefined for a seed) are skipped and not counted in n.
    """
    grouped = per_seed.groupby(["method", "protocol", "metric"], sort=False)["value"]
    out = grouped.agg(mean="mean", std=lambda v: float(v.std(ddof=1)) if v.count() > 1 else 0.0,
                      n="count")
    out.loc[out["n"] == 0, "std"] = np.nan
    return out.reset_index()
