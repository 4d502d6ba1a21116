"""Checkpoints of a run: every method fitted on all known records for every seed, as an ensemble.

A checkpoint is one joblib pickle of a dict (format 3):

    {"format": 3, "tpred_version": str, "config": TrainConfig.to_dict(), "zoo": Zoo,
     "seeds": [int, ...],
     "ensembles": {method: [fitted predictor, one per seed]},
     "calibration": {method: Calibration}}

A method whose predictor has a `seed` hyper-parameter (the gnn) is fitted once per seed of
`cfg.seeds`; the members' predictions give a mean and a standard deviation per pair (for a gnn
with `GNNConfig.ensemble > 1`, every network of every seed is a member). A deterministic method
(additive, lr, mf, knn, score) is fitted once: one member, and its std is NaN (no estimate).

Calibration: the members agree with each other more than with the truth, so the raw std is too
small, and it is near 0 where the members agree even when they are wrong. `calibrate` carves
validation datasets out of the *training* pairs (never test pairs), fits the ensemble on the
rest, and fits σ = sqrt((scale · std)² + floor²) so that |truth − mean| ≤ σ on 68.27 % of the
validation pairs (a normal distribution's share within ±1 σ) and ≤ 2σ on as near 95.45 % as
the form allows (`fit_calibration`); predictions then report σ. Validation datasets are held
out with all their records, as a new dataset arrives in use (the cold-dataset protocol).

Formats 1 and 2 are refused: their gnn networks lack the neighbour-residual inputs (format 3),
so they cannot predict with this version; retrain. Predictors are plain picklable objects (the
gnn keeps its networks' state and fitted featurizers; text encoders drop their weights when
pickled and reload them lazily).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

import tpred
from tpred.config import TrainConfig
from tpred.data.zoo import PAIR, Zoo
from tpred.models import Predictor, is_seeded, make_predictor

log = logging.getLogger(__name__)

FORMAT = 3
READABLE_FORMATS = (3,)
CHECKPOINT_NAME = "checkpoint.pkl"
#: share of a normal distribution within ±1 and ±2 standard deviations
NORMAL_COVERAGE = {1: 0.6826894921370859, 2: 0.9544997361036416}
#: quantiles of the validation |error| tried as the calibration's std floor (`fit_calibration`)
FLOOR_QUANTILES = np.linspace(0.05, 0.60, 12)


# ------------------------------------------------------------------------------- calibration
@dataclass(frozen=True)
class Calibration:
    """The factor that turns an ensemble's spread into a calibrated standard deviation.

    Attributes:
        scale, floor: calibrated std = sqrt((scale · ensemble std)² + floor²) (`fit_calibration`;
            scale NaN when every validation std was 0: then the floor alone).
        num_pairs: validation pairs it was fitted on.
        datasets: the validation datasets (held out of the training pairs with all records).
        coverage_raw: shares of validation pairs with |truth − mean| ≤ 1 and ≤ 2 ensemble stds.
        coverage_calibrated: the same with scale · std (the first is 68.27 % by construction,
            up to ties).
    """

    scale: float
    floor: float
    num_pairs: int
    datasets: tuple[str, ...]
    coverage_raw: tuple[float, float]
    coverage_calibrated: tuple[float, float]

    def apply(self, std: np.ndarray) -> np.ndarray:
        """The calibrated std of ensemble stds [P] (`calibrated_std`)."""
        return calibrated_std(std, self.scale, self.floor)


def coverage(true: np.ndarray, mean: np.ndarray, std: np.ndarray, k: float) -> float:
    """Share of pairs with |true − mean| ≤ k · std (a pair with std 0 counts only if exact).

    Shapes: true, mean, std [P] -> float (NaN for P = 0).
    """
    true, mean, std = (np.asarray(a, dtype=np.float64) for a in (true, mean, std))
    if not len(true):
        return float("nan")
    return float(np.mean(np.abs(true - mean) <= k * std))


def fit_calibration(true: np.ndarray, mean: np.ndarray, std: np.ndarray
                    ) -> tuple[float, float]:
    """(scale, floor) with calibrated std σ = sqrt((scale · std)² + floor²), fitted so that
    |true − mean| ≤ σ on 68.27 % of the pairs and ≤ 2σ as near 95.45 % as this form allows.

    The ensemble's spread says which pairs are harder, but it goes to 0 where the members agree
    and the errors do not; a floor keeps every σ above the noise that every prediction carries.
    For each floor candidate (0 and the `FLOOR_QUANTILES` of |error|) the smallest scale that
    reaches 68.27 % at ±1σ is found by bisection (coverage grows with the scale); the floor
    whose ±2σ coverage is nearest 95.45 % wins (the smaller floor on ties). With every std 0,
    the scale is NaN and σ is the floor alone (the 68.27 % quantile of |error|).

    Shapes: true, mean, std [P] -> (float, float).
    """
    err = np.abs(np.asarray(true, dtype=np.float64) - np.asarray(mean, dtype=np.float64))
    std = np.asarray(std, dtype=np.float64)
    if not len(err):
        return float("nan"), 0.0
    target1, target2 = NORMAL_COVERAGE[1], NORMAL_COVERAGE[2]
    floor_only = float(np.quantile(err, target1))
    if not (pos := std > 0).any():                          # no spread at all: floor only
        return float("nan"), floor_only
    top = float(np.max(err[pos] / std[pos]))                # covers every pair with a spread
    best: tuple[float, float, float] | None = None
    for floor in np.unique(np.concatenate([[0.0], np.quantile(err, FLOOR_QUANTILES)])):
        def covered(c: float, k: float = 1.0, floor: float = floor) -> float:
            return float(np.mean(err <= k * np.sqrt((c * std) ** 2 + floor ** 2)))

        if covered(0.0) >= target1 or covered(top) < target1:
            continue                # the floor alone covers too much, or no scale is enough
        lo, hi = 0.0, top
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if covered(mid) < target1 else (lo, mid)
        miss = abs(covered(hi, 2.0) - target2)
        if best is None or miss < best[0] - 1e-12:
            best = (miss, hi, float(floor))
    if best is None:                                        # no candidate works: floor only
        return 0.0, floor_only
    return best[1], best[2]


def calibrated_std(std: np.ndarray, scale: float, floor: float) -> np.ndarray:
    """sqrt((scale · std)² + floor²); a NaN scale leaves the floor alone. Shapes: [P] -> [P]."""
    std = np.asarray(std, dtype=np.float64)
    spread = np.zeros_like(std) if math.isnan(scale) else scale * std
    return np.sqrt(spread ** 2 + floor ** 2)


def validation_datasets(train_pairs: pd.DataFrame, num_folds: int, seed: int) -> list[str]:
    """The datasets a calibration holds out: 1/num_folds of those in `train_pairs` (≥ 1).

    Drawn as fold 0 of the cold-dataset protocol would draw them from these pairs
    (`np.random.default_rng(seed).permutation`, then the first of `num_folds` parts).

    Raises:
        ValueError: fewer than 2 datasets (nothing left to train on).
    """
    units = list(pd.unique(train_pairs["dataset"]))
    if len(units) < 2:
        raise ValueError(f"calibration needs at least 2 datasets with training records, got "
                         f"{len(units)}")
    order = np.random.default_rng(seed).permutation(len(units))
    part = np.array_split(order, max(2, min(num_folds, len(units))))[0]
    return [units[i] for i in sorted(part)]


def calibrate(zoo: Zoo, cfg: TrainConfig, method: str, train_pairs: pd.DataFrame | None = None,
              *, seeds: Sequence[int] | None = None) -> Calibration | None:
    """Fit the std scale of `method`'s seed ensemble on validation datasets carved from training.

    Args:
        zoo: the zoo; only the records of `train_pairs` are read.
        cfg: the run's config (predictor settings, `protocol.num_folds` for the validation size).
        method: a predictor name.
        train_pairs: the pairs the run may train on (default: every known pair).
        seeds: ensemble seeds (default `cfg.seeds`); the first also draws the validation split.

    Returns:
        The calibration, or None when the ensemble has a single member (no spread to scale).
    """
    seeds = list(cfg.seeds if seeds is None else seeds)
    train_pairs = (zoo.known_pairs() if train_pairs is None else train_pairs)[PAIR]
    if ensemble_size(method, cfg, seeds) < 2:
        return None
    held = validation_datasets(train_pairs, cfg.protocol.num_folds, seeds[0])
    is_val = train_pairs["dataset"].isin(held).to_numpy()
    fit_pairs = train_pairs[~is_val].reset_index(drop=True)
    val_pairs = train_pairs[is_val].reset_index(drop=True)
    members = fit_members(zoo, cfg, method, fit_pairs, seeds=seeds)
    mean, std = ensemble_predict(members, val_pairs)
    true = zoo.accuracy(val_pairs)
    scale, floor = fit_calibration(true, mean, std)
    sigma = calibrated_std(std, scale, floor)
    raw = (coverage(true, mean, std, 1), coverage(true, mean, std, 2))
    cal = (coverage(true, mean, sigma, 1), coverage(true, mean, sigma, 2))
    log.info("calibration of %s on %d validation pairs: scale %.3g, floor %.3g, coverage "
             "±1/±2 std %.3f/%.3f raw, %.3f/%.3f calibrated", method, len(val_pairs), scale,
             floor, *raw, *cal)
    return Calibration(scale, floor, len(val_pairs), tuple(held), raw, cal)


# ---------------------------------------------------------------------------------- fitting
def ensemble_size(method: str, cfg: TrainConfig, seeds: Sequence[int]) -> int:
    """Members of `method`'s ensemble: seeds × gnn networks for a seeded method, else 1."""
    if not is_seeded(method, cfg):
        return 1
    return len(seeds) * (cfg.gnn.ensemble if method == "gnn" else 1)


def fit_members(zoo: Zoo, cfg: TrainConfig, method: str, train_pairs: pd.DataFrame, *,
                seeds: Sequence[int] | None = None) -> list[Predictor]:
    """`method` fitted on `train_pairs`: one predictor per seed if it is seeded, else one."""
    seeds = list(cfg.seeds if seeds is None else seeds)
    if not is_seeded(method, cfg):
        seeds = seeds[:1]
    return [make_predictor(method, cfg, s).fit(zoo, train_pairs) for s in seeds]


def fit_all(zoo: Zoo, cfg: TrainConfig, methods: Sequence[str],
            train_pairs: pd.DataFrame | None = None, *, seeds: Sequence[int] | None = None,
            progress: bool = True) -> dict[str, list[Predictor]]:
    """Every method fitted on `train_pairs` (default: all known records) for every seed.

    Each member is fitted exactly as `tpred.evaluation.run.evaluate` fits a split's predictor
    (`make_predictor(method, cfg, seed).fit(zoo, train_pairs)`), so a member of seed s
    predicts what the protocol's predictor of seed s predicts for the same training pairs.
    """
    pairs = zoo.known_pairs() if train_pairs is None else train_pairs[PAIR].reset_index(drop=True)
    fitted: dict[str, list[Predictor]] = {}
    for method in tqdm(list(methods), desc="fit on all records", disable=not progress):
        fitted[method] = fit_members(zoo, cfg, method, pairs, seeds=seeds)
    return fitted


def calibrate_all(zoo: Zoo, cfg: TrainConfig, methods: Sequence[str],
                  train_pairs: pd.DataFrame | None = None, *, seeds: Sequence[int] | None = None,
                  progress: bool = True) -> dict[str, Calibration]:
    """`calibrate` for every method with more than one ensemble member."""
    seeds = list(cfg.seeds if seeds is None else seeds)
    todo = [m for m in methods if ensemble_size(m, cfg, seeds) > 1]
    out = {}
    for method in tqdm(todo, desc="calibrate std", disable=not progress):
        if (cal := calibrate(zoo, cfg, method, train_pairs, seeds=seeds)) is not None:
            out[method] = cal
    return out


def ensemble_predict(members: Sequence[Predictor], pairs: pd.DataFrame,
                     zoo: Zoo | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over the members' predictions of `pairs`.

    A member that reports its own spread (`predict(..., return_std=True)`, the gnn with
    `GNNConfig.ensemble > 1`) contributes each of its networks: the std is the population std
    over every network of every member, sqrt(mean_s(σ_s² + m_s²) − m²). With a single network
    in all, the std is NaN (no estimate), not 0.

    Shapes: pairs [P] -> mean [P], std [P].
    """
    means, variances, counts = [], [], []
    for member in members:
        size = len(getattr(member, "members_", ())) or 1
        if size > 1:
            m, s = member.predict(pairs, zoo, return_std=True)
        else:
            m, s = member.predict(pairs, zoo), np.zeros(len(pairs))
        means.append(np.asarray(m, dtype=np.float64))
        variances.append(np.asarray(s, dtype=np.float64) ** 2)
        counts.append(size)
    w = np.asarray(counts, dtype=np.float64)[:, None] / sum(counts)       # [S, 1]
    m, v = np.stack(means), np.stack(variances)                           # [S, P] each
    mean = (w * m).sum(0)                                                 # [P]
    if sum(counts) < 2:
        return mean, np.full(len(pairs), np.nan)
    var = (w * (v + m ** 2)).sum(0) - mean ** 2
    return mean, np.sqrt(np.maximum(var, 0.0))


# ------------------------------------------------------------------------------ save / load
def save_checkpoint(path: Path, cfg: TrainConfig, zoo: Zoo,
                    ensembles: dict[str, list[Predictor]],
                    calibration: dict[str, Calibration] | None = None) -> Path:
    """Write a format-3 checkpoint (see the module docstring) and return its path."""
    payload = {"format": FORMAT, "tpred_version": tpred.__version__, "config": cfg.to_dict(),
               "zoo": zoo, "seeds": list(cfg.seeds),
               "ensembles": {m: list(p) for m, p in ensembles.items()},
               "calibration": dict(calibration or {})}
    joblib.dump(payload, path)
    return Path(path)


def load_checkpoint(path: Path | str) -> dict:
    """Read a checkpoint (a file, or a run folder holding `checkpoint.pkl`).

    Returns:
        The payload with `config` as a TrainConfig, `ensembles` and `calibration`.

    Raises:
        ValueError: the file is missing, unreadable, or not a tpred checkpoint of a known format.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise ValueError(f"{path}: no checkpoint here (a run folder holds {CHECKPOINT_NAME}; "
                         f"`python -m tpred.train` writes it)")
    try:
        payload = joblib.load(path)
    except Exception as err:  # noqa: BLE001  (unpickling raises anything; report it as bad input)
        raise ValueError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") \
            from None
    if not isinstance(payload, dict) or payload.get("format") not in READABLE_FORMATS:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path}: not a tpred checkpoint of format {list(READABLE_FORMATS)} "
                         f"(found {found!r}; a checkpoint of an older tpred must be retrained "
                         f"with `python -m tpred.train`)")
    payload["config"] = TrainConfig.from_dict(payload["config"], where=str(path))
    payload["path"] = path
    return payload
