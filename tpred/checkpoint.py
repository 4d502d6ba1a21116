"""Checkpoints of a run: every method fitted on all known records for every seed, as an ensemble.

A checkpoint is a folder (`<run>/checkpoint/`, format 6) whose files run no code when read:

    manifest.json        format, tpred version, the config (`TrainConfig.to_dict()`), seeds, the
                         members of each method (seed; where its learned state is), the std
                         calibrations, the tables' dtypes, `check_atol`; `created_utc`,
                         `config_sha256` (of the config as sorted JSON) and `data_sha256` (of
                         the four zoo tables as written), which `tpred.predict` prints
    zoo/models.csv, zoo/datasets.csv, zoo/records.csv, zoo/scores.csv
                         the zoo the members were fitted on, exactly (`write_table`)
    train_pairs.csv      the pairs they were fitted on, in fitting order
    check_pairs.csv      up to `NUM_CHECK_PAIRS` known pairs
    weights.safetensors  what training learned that cannot be re-derived cheaply (the gnn's
                         networks: `<method>/<member>/<k>.<parameter>`), and every member's
                         predictions of the check pairs (`check/<method>/<member>`, float64)

Nothing is unpickled: loading re-derives each member from the config and the tables. A member
with learned state (`learned_state()` / `restore(zoo, train_pairs, state)`: the gnn) gets its
featurizers and graph re-derived and its networks' weights from safetensors; every other method
(additive, lr, mf, knn, zmean, score: deterministic, and cheap next to the gnn's training) is
fitted again exactly as `fit_all` fitted it. Then each member must predict the check pairs as it
did when saved (within `CHECK_ATOL`): a version of tpred that would re-derive another model
refuses the checkpoint instead of predicting something else.

Format 3 (tpred before safe checkpoints) is one joblib pickle (`checkpoint.pkl`) of
`{"format": 3, "tpred_version", "config", "zoo", "seeds", "ensembles", "calibration"}`.
Unpickling runs whatever code the file holds, so it is loaded only with `trust=True`
(`--trust`); `tpred.load(old, trust=True).save(folder)` rewrites it as format 6. Formats 1 and 2
are refused (their gnn networks lack the neighbour-residual inputs; retrain). Format 4 is format
5 without the calibrations' `reference` (before 2026-12-02): it is read, and its std keeps the
absolute form it was calibrated with (`Calibration.reference` NaN). A tpred that reads format 4
only refuses format 5, rather than apply a scale fitted to a relative spread to an absolute one.
Format 5 is format 6 without the calibrations' `level_weight` (before 2026-12-03): it is read
with weight 0 (no level term, the std it was calibrated with); a tpred that reads format 5 only
refuses format 6, rather than drop the level term and report a std narrower than fitted.

A method whose predictor has a `seed` hyper-parameter (the gnn) is fitted once per seed of
`cfg.seeds`; the members' predictions give a mean and a standard deviation per pair (for a gnn
with `GNNConfig.ensemble > 1`, every network of every seed is a member). A deterministic method
(additive, lr, mf, knn, score) is fitted once: one member, and its std is NaN (no estimate).

Calibration: the members agree with each other more than with the truth, so the raw std is too
small, and it is near 0 where the members agree even when they are wrong. Its size also
varies from one fit to the next (how long each seed trained), by up to 4× between a
validation fit and the final one, so the std enters relative to the same ensemble's reference
spread (`reference_spread`: its mean std over its own training pairs, predicted a chunk of
datasets at a time). `calibrate` holds out `CALIBRATION_FOLDS` folds of validation datasets
from the *training* pairs (never test pairs), one at a time, fits the ensemble on the rest of
each, and fits σ = sqrt((scale · std / reference)² + floor²) on the pooled validation pairs so
that |truth − mean| ≤ σ on 68.27 % of them (a normal distribution's share within ±1 σ) and ≤ 2σ
on as near 95.45 % as the form allows (`fit_calibration`); predictions then report σ, with the
final ensemble's own reference. The form has one more term, (w · level spread)², for how much
the levels of a dataset's most similar training datasets disagree (`KNNPredictor.level_spread`,
knn fitted on the same training pairs): a new dataset's error is mostly its level, and the
members' spread alone does not see how uncertain that level is (on DomainNet-270 its rank
correlation with |error| on inner cold datasets was 0.10, the level spread's 0.30). w is chosen
from `LEVEL_WEIGHTS` by the normal log-likelihood of the validation pairs
(`fit_level_calibration`; w = 0 is the form without it), and is 0 with fewer than
`LEVEL_MIN_DATASETS` validation datasets. Validation datasets are held out
with all their records, as a new dataset arrives in use (the cold-dataset protocol).
bench/README.md ("A relative ensemble spread", "The spread of the neighbours' levels") has the
inner validation of this form.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
import numpy as np
import pandas as pd
import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

import tpred
from tpred.config import GNN_ADDED_FIELDS, TrainConfig
from tpred.data.zoo import PAIR, Zoo
from tpred.errors import UntrustedFileError
from tpred.models import Predictor, is_seeded, make_predictor

if TYPE_CHECKING:
    from tpred.models.knn import KNNPredictor

log = logging.getLogger(__name__)

FORMAT = 6
#: formats of checkpoint folders read (4: calibrations without a reference spread; 5: without
#: a level weight)
FOLDER_FORMATS = (4, 5, 6)
#: formats of the old pickle checkpoints still read (with trust=True)
PICKLE_FORMATS = (3,)
#: the checkpoint folder in a run folder, and the old pickle file
CHECKPOINT_NAME = "checkpoint"
PICKLE_NAME = "checkpoint.pkl"
MANIFEST = "manifest.json"
WEIGHTS_FILE = "weights.safetensors"
#: known pairs whose predictions a checkpoint keeps, to check its members when loaded
NUM_CHECK_PAIRS = 64
#: a re-derived member may predict a check pair this far from the saved prediction (float32
#: networks on another CPU differ in the last bits; a changed model differs by far more)
CHECK_ATOL = 1e-5
#: share of a normal distribution within ±1 and ±2 standard deviations
NORMAL_COVERAGE = {1: 0.6826894921370859, 2: 0.9544997361036416}
#: quantiles of the validation |error| tried as the calibration's std floor (`fit_calibration`)
FLOOR_QUANTILES = np.linspace(0.05, 0.60, 12)
#: training datasets whose levels give a dataset's level spread (`KNNPredictor.level_spread`);
#: chosen on inner splits (bench/README.md, "The spread of the neighbours' levels")
LEVEL_NEIGHBOURS = 20
#: weights of the level spread in the calibrated std tried by `fit_level_calibration`
LEVEL_WEIGHTS = (0.0, 0.125, 0.25, 0.375, 0.5, 0.75, 1.0, 1.5, 2.0)
#: a level weight whose term alone covers more than 68.27 % + this at ±1σ is too wide
LEVEL_SLACK = 0.01
#: validation datasets needed to fit a level weight: the level spread is one number per
#: dataset, and on sfda11 (3 validation datasets) the weight went to the grid's edge by chance
LEVEL_MIN_DATASETS = 20


# ------------------------------------------------------------------------------- calibration
#: the largest std of any accuracy: a variable in [0, 1] has variance <= 1/4 (Popoviciu). A
#: calibration fitted on a handful of pairs can ask for more (a scale of 400 on a 9-record
#: zoo); more than this says nothing, so the calibrated std stops here
MAX_STD = 0.5
#: fewer validation pairs than this: the calibration is fitted but the run says it is rough
MIN_CALIBRATION_PAIRS = 20
#: folds of validation datasets a calibration pools (each one ensemble fit per seed)
CALIBRATION_FOLDS = 3


#: kinds of pair a prediction is for (`pair_kinds`): both ends have records ("known", a
#: missing cell), only the model ("dataset": a new dataset), only the dataset ("model": a new
#: model), neither ("both"). One calibrated form serves them all (fitted on new datasets);
#: bench/README.md, "A calibrated form per kind of pair" and "A form for missing cells", has
#: its coverage on each kind and the forms per kind that were tried.
PAIR_KINDS = ("known", "dataset", "model", "both")


def pair_kinds(pairs: pd.DataFrame, known: pd.DataFrame) -> np.ndarray:
    """Each pair's kind (`PAIR_KINDS`) given the `known` pairs (records) the ensemble reads: is
    its model, its dataset, in a known pair? Shapes: pairs [P], known [R] -> [P] (str)."""
    has_model = pairs["model"].isin(known["model"]).to_numpy()
    has_dataset = pairs["dataset"].isin(known["dataset"]).to_numpy()
    return np.select([has_model & has_dataset, has_model, has_dataset],
                     ["known", "dataset", "model"], "both").astype(object)


@dataclass(frozen=True)
class Calibration:
    """The factor that turns an ensemble's spread into a calibrated standard deviation.

    Attributes:
        scale, floor: calibrated std = sqrt((scale · ensemble std / reference)² + floor² +
            (level_weight · level spread)²) (`fit_calibration`; scale NaN when every validation
            std was 0: then the other terms alone).
        num_pairs: validation pairs it was fitted on (all folds).
        datasets: the validation datasets (held out of the training pairs with all records).
        coverage_raw: shares of validation pairs with |truth − mean| ≤ 1 and ≤ 2 ensemble stds.
        coverage_calibrated: the same with the calibrated std (the first is 68.27 % by
            construction, up to ties).
        reference: the reference spread of the ensemble it is applied to (`reference_spread`
            of the final members); NaN in checkpoints written before it existed, whose scale
            multiplies the std itself.
    """

    scale: float
    floor: float
    num_pairs: int
    datasets: tuple[str, ...]
    coverage_raw: tuple[float, float]
    coverage_calibrated: tuple[float, float]
    reference: float = float("nan")
    level_weight: float = 0.0

    def apply(self, std: np.ndarray, level: np.ndarray | None = None) -> np.ndarray:
        """The calibrated std of ensemble stds [P] (`calibrated_std` of std / reference, with
        the pairs' dataset level spreads `level` [P] when `level_weight` > 0), at most
        `MAX_STD`.

        Raises:
            ValueError: `level_weight` > 0 and no `level` given.
        """
        extra = None
        if self.level_weight > 0:
            if level is None:
                raise ValueError("Calibration.apply: this calibration has a level term "
                                 f"(weight {self.level_weight:g}); pass each pair's dataset "
                                 "level spread (`level_spreads`)")
            extra = self.level_weight * np.asarray(level, dtype=np.float64)
        return np.minimum(calibrated_std(relative_spread(std, self.reference), self.scale,
                                         self.floor, extra), MAX_STD)

    def describe(self) -> str:
        """The formula `apply` computes, with its numbers (for a command's summary line)."""
        std = "std" if math.isnan(self.reference) else f"std / {self.reference:.3g}"
        level = (f" + ({self.level_weight:g} x level spread)^2" if self.level_weight > 0
                 else "")
        return (f"sqrt(({self.scale:.3g} x {std})^2 + {self.floor:.3f}^2{level}), at most "
                f"{MAX_STD}")


def relative_spread(std: np.ndarray, reference: float) -> np.ndarray:
    """std / reference; std itself for a NaN reference (an older checkpoint), 0 for a
    reference of 0 (members that never disagree: the floor alone). Shapes: [P] -> [P]."""
    std = np.asarray(std, dtype=np.float64)
    if math.isnan(reference):
        return std
    return std / reference if reference > 0 else np.zeros_like(std)


def reference_spread(members: Sequence[Predictor], pairs: pd.DataFrame, num_chunks: int,
                     seed: int) -> float:
    """The ensemble's typical spread: its mean std over `pairs` (its training pairs), predicted
    chunk by chunk of datasets, each chunk's own records left out of the message edges (as
    `predict` does for the pairs it is asked), so that the spread is that of datasets without
    records, as in use. Chunks: `num_chunks` parts of a permutation of the datasets (seed).
    NaN for an ensemble of one network.

    Shapes: pairs [P] -> float.
    """
    datasets = pd.unique(pairs["dataset"])
    order = np.random.default_rng(seed).permutation(len(datasets))
    stds = [ensemble_predict(members, pairs[pairs["dataset"].isin(datasets[part])]
                             .reset_index(drop=True))[1]
            for part in np.array_split(order, max(1, min(num_chunks, len(datasets))))]
    return float(np.concatenate(stds).mean())


def coverage(true: np.ndarray, mean: np.ndarray, std: np.ndarray, k: float) -> float:
    """Share of pairs with |true − mean| ≤ k · std (a pair with std 0 counts only if exact).

    Shapes: true, mean, std [P] -> float (NaN for P = 0).
    """
    true, mean, std = (np.asarray(a, dtype=np.float64) for a in (true, mean, std))
    if not len(true):
        return float("nan")
    return float(np.mean(np.abs(true - mean) <= k * std))


def fit_calibration(true: np.ndarray, mean: np.ndarray, std: np.ndarray,
                    extra: np.ndarray | None = None) -> tuple[float, float]:
    """(scale, floor) with calibrated std σ = sqrt((scale · std)² + floor² + extra²), fitted so
    that |true − mean| ≤ σ on 68.27 % of the pairs and ≤ 2σ as near 95.45 % as this form
    allows. `extra` [P] (default 0) is a per-pair width fixed beforehand (the weighted level
    spread of `fit_level_calibration`).

    The ensemble's spread says which pairs are harder, but it goes to 0 where the members agree
    and the errors do not; a floor keeps every σ above the noise that every prediction carries.
    For each floor candidate (0 and the `FLOOR_QUANTILES` of |error|) the smallest scale that
    reaches 68.27 % at ±1σ is found by bisection (coverage grows with the scale); the floor
    whose ±2σ coverage is nearest 95.45 % wins (the smaller floor on ties). With every std 0,
    the scale is NaN and σ is the floor alone (the 68.27 % quantile of |error|).

    Shapes: true, mean, std, extra [P] -> (float, float).
    """
    err = np.abs(np.asarray(true, dtype=np.float64) - np.asarray(mean, dtype=np.float64))
    std = np.asarray(std, dtype=np.float64)
    extra2 = (np.zeros_like(err) if extra is None
              else np.asarray(extra, dtype=np.float64) ** 2)
    if not len(err):
        return float("nan"), 0.0
    target1, target2 = NORMAL_COVERAGE[1], NORMAL_COVERAGE[2]
    if not (pos := std > 0).any():                          # no spread at all: floor only
        return float("nan"), _floor_only(err, extra2, target1)
    top = float(np.max(err[pos] / std[pos]))                # covers every pair with a spread
    best: tuple[float, float, float] | None = None
    for floor in np.unique(np.concatenate([[0.0], np.quantile(err, FLOOR_QUANTILES)])):
        def covered(c: float, k: float = 1.0, floor: float = floor) -> float:
            return float(np.mean(err <= k * np.sqrt((c * std) ** 2 + floor ** 2 + extra2)))

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
        return 0.0, _floor_only(err, extra2, target1)
    return best[1], best[2]


def _floor_only(err: np.ndarray, extra2: np.ndarray, target: float) -> float:
    """The smallest floor f with |error| ≤ sqrt(f² + extra²) on `target` of the pairs (the
    `target` quantile of |error| when extra is 0). Shapes: err, extra2 [P] -> float."""
    return float(np.quantile(np.sqrt(np.maximum(err ** 2 - extra2, 0.0)), target))


def calibrated_std(std: np.ndarray, scale: float, floor: float,
                   extra: np.ndarray | None = None) -> np.ndarray:
    """sqrt((scale · std)² + floor² + extra²); a NaN scale leaves the other terms alone.
    Shapes: std, extra [P] -> [P]."""
    std = np.asarray(std, dtype=np.float64)
    spread = np.zeros_like(std) if math.isnan(scale) else scale * std
    extra = 0.0 if extra is None else np.asarray(extra, dtype=np.float64)
    return np.sqrt(spread ** 2 + floor ** 2 + extra ** 2)


def gaussian_nll(true: np.ndarray, mean: np.ndarray, sigma: np.ndarray) -> float:
    """Mean negative log-likelihood of `true` under normals N(mean, sigma²), without the
    constant log √(2π) (a proper score: it rewards a σ that is both calibrated and as narrow
    as the errors allow). σ below 1e-6 counts as 1e-6. Shapes: [P] -> float."""
    sigma = np.maximum(np.asarray(sigma, dtype=np.float64), 1e-6)
    err = np.asarray(true, dtype=np.float64) - np.asarray(mean, dtype=np.float64)
    return float(np.mean(np.log(sigma) + 0.5 * (err / sigma) ** 2))


def fit_level_calibration(true: np.ndarray, mean: np.ndarray, std: np.ndarray,
                          level: np.ndarray, weights: Sequence[float] = LEVEL_WEIGHTS
                          ) -> tuple[float, float, float]:
    """(scale, floor, level weight w) of σ = sqrt((scale · std)² + floor² + (w · level)²).

    For each w of `weights`, scale and floor are fitted by `fit_calibration`; a w whose level
    term alone covers more than 68.27 % + `LEVEL_SLACK` of the pairs at ±1σ (scale and floor
    cannot make σ narrower) is not a calibrated candidate and is skipped. Of the others, the w
    with the lowest `gaussian_nll` on these pairs wins (the smaller w on ties). w = 0, the form
    without the level term, is always a candidate.

    Shapes: true, mean, std, level [P] -> (float, float, float).
    """
    level = np.asarray(level, dtype=np.float64)
    best: tuple[float, float, float, float] | None = None
    for w in weights:
        scale, floor = fit_calibration(true, mean, std, w * level)
        sigma = calibrated_std(std, scale, floor, w * level)
        if w > 0 and coverage(true, mean, sigma, 1) > NORMAL_COVERAGE[1] + LEVEL_SLACK:
            continue
        nll = gaussian_nll(true, mean, sigma)
        if best is None or nll < best[0] - 1e-12:
            best = (nll, scale, floor, float(w))
    assert best is not None, "fit_level_calibration: no weights"
    return best[1], best[2], best[3]


def level_weights(folds: Sequence[Sequence[str]]) -> tuple[float, ...]:
    """The level weights `fit_level_calibration` may try for validation `folds` (lists of
    dataset ids): `LEVEL_WEIGHTS`, or only 0 with fewer than `LEVEL_MIN_DATASETS` validation
    datasets in all (too few to say how the error grows with a per-dataset spread)."""
    return LEVEL_WEIGHTS if sum(map(len, folds)) >= LEVEL_MIN_DATASETS else (0.0,)


def level_spreads(zoo: Zoo, cfg: TrainConfig, train_pairs: pd.DataFrame,
                  pairs: pd.DataFrame, query_zoo: Zoo | None = None) -> np.ndarray:
    """Each pair's dataset level spread (`KNNPredictor.level_spread`, k = `LEVEL_NEIGHBOURS`)
    with knn (the config's features and scores) fitted on `train_pairs` of `zoo`; the pairs'
    datasets are described by `query_zoo` (default `zoo`). Shapes: pairs [P] -> [P]."""
    knn = make_predictor("knn", cfg, 0).fit(zoo, train_pairs)
    return knn_level_spreads(knn, pairs, query_zoo)


def knn_level_spreads(knn: KNNPredictor, pairs: pd.DataFrame, zoo: Zoo | None = None
                      ) -> np.ndarray:
    """`level_spreads` from a fitted `KNNPredictor`. Shapes: pairs [P] -> [P]."""
    datasets, inverse = np.unique(pairs["dataset"].to_numpy(dtype=str), return_inverse=True)
    return knn.level_spread(datasets, zoo, k=LEVEL_NEIGHBOURS)[inverse]


def validation_datasets(train_pairs: pd.DataFrame, num_folds: int, seed: int) -> list[str]:
    """The first fold of `validation_folds`: 1/num_folds of the datasets in `train_pairs`."""
    return validation_folds(train_pairs, num_folds, seed, 1)[0]


def validation_folds(train_pairs: pd.DataFrame, num_folds: int, seed: int, count: int
                     ) -> list[list[str]]:
    """Disjoint folds of datasets a calibration holds out in turn, each 1/num_folds of those in
    `train_pairs` (≥ 1 dataset), at most `count` of them (fewer when there are fewer folds).

    Drawn as the cold-dataset protocol draws its folds from these pairs
    (`np.random.default_rng(seed).permutation`, then the first `count` of `num_folds` parts).

    Raises:
        ValueError: fewer than 2 datasets (nothing left to train on).
    """
    units = list(pd.unique(train_pairs["dataset"]))
    if len(units) < 2:
        raise ValueError(f"calibration needs at least 2 datasets with training records, got "
                         f"{len(units)}")
    order = np.random.default_rng(seed).permutation(len(units))
    parts = np.array_split(order, max(2, min(num_folds, len(units))))[:count]
    return [[units[i] for i in sorted(part)] for part in parts]


def calibrate(zoo: Zoo, cfg: TrainConfig, method: str, train_pairs: pd.DataFrame | None = None,
              *, seeds: Sequence[int] | None = None,
              members: Sequence[Predictor] | None = None) -> Calibration | None:
    """Fit the std calibration of `method`'s seed ensemble on validation datasets carved from
    the training pairs (module docstring).

    Each of `CALIBRATION_FOLDS` folds of validation datasets (`validation_folds`) is held out in
    turn: the ensemble is fitted on the rest, predicts the fold, and its std is divided by that
    ensemble's `reference_spread`. Scale and floor are fitted on all folds' pairs together.

    Args:
        zoo: the zoo; only the records of `train_pairs` are read.
        cfg: the run's config (predictor settings, `protocol.num_folds` for the fold size).
        method: a predictor name.
        train_pairs: the pairs the run may train on (default: every known pair).
        seeds: ensemble seeds (default `cfg.seeds`); the first also draws the folds.
        members: the ensemble the calibration is for (fitted on `train_pairs`), whose reference
            spread it keeps; default: fitted here.

    Returns:
        The calibration, or None when the ensemble has a single member (no spread to scale).
    """
    seeds = list(cfg.seeds if seeds is None else seeds)
    train_pairs = (zoo.known_pairs() if train_pairs is None
                   else train_pairs)[PAIR].reset_index(drop=True)
    if ensemble_size(method, cfg, seeds) < 2:
        return None
    chunks = cfg.protocol.num_folds
    folds = validation_folds(train_pairs, chunks, seeds[0], CALIBRATION_FOLDS)
    true, mean, std, relative, level = [], [], [], [], []
    weights = level_weights(folds)
    for held in folds:
        is_val = train_pairs["dataset"].isin(held).to_numpy()
        fit_pairs = train_pairs[~is_val].reset_index(drop=True)
        val_pairs = train_pairs[is_val].reset_index(drop=True)
        fold_members = fit_members(zoo, cfg, method, fit_pairs, seeds=seeds)
        fold_mean, fold_std = ensemble_predict(fold_members, val_pairs)
        true.append(zoo.accuracy(val_pairs))
        mean.append(fold_mean)
        std.append(fold_std)
        relative.append(relative_spread(fold_std, reference_spread(fold_members, fit_pairs,
                                                                   chunks, seeds[0])))
        level.append(level_spreads(zoo, cfg, fit_pairs, val_pairs) if any(weights)
                     else np.zeros(len(val_pairs)))
    true, mean, std, relative, level = map(np.concatenate, (true, mean, std, relative, level))
    scale, floor, weight = fit_level_calibration(true, mean, relative, level, weights)
    sigma = calibrated_std(relative, scale, floor, weight * level)
    raw = (coverage(true, mean, std, 1), coverage(true, mean, std, 2))
    cal = (coverage(true, mean, sigma, 1), coverage(true, mean, sigma, 2))
    if members is None:
        members = fit_members(zoo, cfg, method, train_pairs, seeds=seeds)
    reference = reference_spread(members, train_pairs, chunks, seeds[0])
    held = [d for fold in folds for d in fold]
    if len(true) < MIN_CALIBRATION_PAIRS:
        log.warning("calibration of %s: only %d validation pairs (datasets %s), so its std is a "
                    "rough guide (capped at %.1f, the largest std of an accuracy)", method,
                    len(true), held, MAX_STD)
    log.info("calibration of %s on %d validation pairs (%d folds): scale %.3g, floor %.3g, "
             "level weight %g, reference spread %.3g, coverage ±1/±2 std %.3f/%.3f raw, "
             "%.3f/%.3f calibrated", method, len(true), len(folds), scale, floor, weight,
             reference, *raw, *cal)
    return Calibration(scale, floor, len(true), tuple(held), raw, cal, reference, weight)


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
                  ensembles: dict[str, Sequence[Predictor]] | None = None,
                  progress: bool = True) -> dict[str, Calibration]:
    """`calibrate` for every method with more than one ensemble member (`ensembles`: the
    fitted members of each method, `fit_all`'s result, whose reference spreads are kept)."""
    seeds = list(cfg.seeds if seeds is None else seeds)
    todo = [m for m in methods if ensemble_size(m, cfg, seeds) > 1]
    out = {}
    for method in tqdm(todo, desc="calibrate std", disable=not progress):
        members = (ensembles or {}).get(method)
        if (cal := calibrate(zoo, cfg, method, train_pairs, seeds=seeds,
                             members=members)) is not None:
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
def save_checkpoint(path: str | Path, cfg: TrainConfig, zoo: Zoo,
                    ensembles: dict[str, list[Predictor]],
                    calibration: dict[str, Calibration] | None = None, *,
                    train_pairs: pd.DataFrame | None = None) -> Path:
    """Write a checkpoint folder (format 6, see the module docstring) and return its path.

    Args:
        path: the folder to write (replaced atomically if it exists); by convention
            `<run>/checkpoint`.
        cfg: the run's config; every member must be `make_predictor(method, cfg, seed)` fitted
            on (`zoo`, `train_pairs`): that is how `load_checkpoint` re-derives it.
        zoo: the zoo the members were fitted on.
        ensembles: method -> fitted members (one per seed for a seeded method).
        calibration: method -> std calibration.
        train_pairs: the pairs the members were fitted on, in fitting order (default: every
            known pair of `zoo`, as `fit_all` fits).

    Raises:
        ValueError: a member that `make_predictor(method, cfg, seed)` would not build, or a
            training pair without a record.
    """
    path = Path(path)
    pairs = (zoo.known_pairs() if train_pairs is None
             else train_pairs[PAIR].reset_index(drop=True))
    zoo.accuracy(pairs)  # raises, naming the pair, when one has no record
    check_pairs = _check_pairs(zoo)
    tensors: dict[str, torch.Tensor] = {}
    methods: dict[str, Any] = {}
    for method, members in ensembles.items():
        entries = []
        for i, member in enumerate(members):
            seed = getattr(member, "seed", None)
            expected = type(make_predictor(method, cfg, seed))
            if type(member) is not expected:
                raise ValueError(f"save_checkpoint: member {i} of {method!r} is a "
                                 f"{type(member).__name__}, but make_predictor({method!r}, cfg) "
                                 f"builds a {expected.__name__}; a checkpoint re-derives its "
                                 f"members from the config")
            entry: dict[str, Any] = {"seed": seed, "state": None}
            if hasattr(member, "learned_state"):
                entry["state"] = f"{method}/{i}/"
                tensors.update({entry["state"] + k: v for k, v in
                                member.learned_state().items()})
            entries.append(entry)
            tensors[f"check/{method}/{i}"] = torch.from_numpy(np.asarray(
                member.predict(check_pairs, zoo), dtype=np.float64).copy())
        methods[method] = entries
    manifest = {
        "format": FORMAT, "tpred_version": tpred.__version__, "config": cfg.to_dict(),
        "seeds": [int(s) for s in cfg.seeds], "methods": methods,
        "calibration": {m: _calibration_to_dict(c) for m, c in (calibration or {}).items()},
        "tables": {}, "train_pairs": "train_pairs.csv", "check_pairs": "check_pairs.csv",
        "weights": WEIGHTS_FILE, "check_atol": CHECK_ATOL,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config_sha256": config_sha256(cfg)}
    tmp = Path(tempfile.mkdtemp(dir=path.parent if path.parent.exists() else None,
                                prefix=f".{path.name}.", suffix=".tmp"))
    try:
        (tmp / "zoo").mkdir()
        for name, frame, index in (("models", zoo.models, "model"),
                                   ("datasets", zoo.datasets, "dataset"),
                                   ("records", zoo.records, None),
                                   ("scores", zoo.scores, None)):
            manifest["tables"][name] = write_table(
                frame.reset_index() if index else frame, tmp / "zoo" / f"{name}.csv")
        write_table(pairs, tmp / "train_pairs.csv")
        write_table(check_pairs, tmp / "check_pairs.csv")
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": str(FORMAT)})
        digest = hashlib.sha256()
        for name in ("models", "datasets", "records", "scores"):
            digest.update((tmp / "zoo" / f"{name}.csv").read_bytes())
        manifest["data_sha256"] = digest.hexdigest()
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            old = path.with_name(f".{path.name}.{os.getpid()}.old")
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old)
        else:
            tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return path


def load_checkpoint(path: Path | str, *, trust: bool = False, progress: bool = False) -> dict:
    """Read a checkpoint: a run folder, its `checkpoint/` folder, or an old `checkpoint.pkl`.

    A checkpoint folder runs no code from the files (see the module docstring): the zoo comes
    from its CSV tables, the settings from JSON, the networks' weights from safetensors, and
    every member is re-derived (`restore`, or `fit` for the deterministic methods); then the
    members' predictions of the saved check pairs must equal those written at saving.

    Args:
        path: run folder, checkpoint folder, or a pickle checkpoint file (format 3).
        trust: allow unpickling an old checkpoint (`--trust`): unpickling runs whatever code
            the file holds, so only for a file you made or trust.
        progress: a progress bar over the members re-derived.

    Returns:
        `{"format", "tpred_version", "config": TrainConfig, "zoo": Zoo, "seeds",
        "ensembles": {method: [predictor, ...]}, "calibration": {method: Calibration},
        "path": the checkpoint's path, "created_utc", "config_sha256", "data_sha256"}` (the
        last three None for a checkpoint written before they were recorded).

    Raises:
        UntrustedFileError: a pickle checkpoint without `trust`.
        ValueError: nothing loadable there, a damaged or foreign checkpoint, a format this
            version cannot read, or members whose predictions differ from the saved ones.
    """
    path = resolve_checkpoint(path)
    if path.is_file():
        return _load_pickle(path, trust=trust)
    manifest = _read_manifest(path)
    cfg = TrainConfig.from_dict(_with_added_fields(manifest["config"]),
                                where=str(path / MANIFEST))
    tables = {name: read_table(path / "zoo" / f"{name}.csv", schema)
              for name, schema in manifest["tables"].items()}
    try:
        zoo = Zoo.from_frames(tables["models"], tables["datasets"], tables["records"],
                              tables["scores"])
    except (KeyError, ValueError) as err:
        raise ValueError(f"{path}/zoo: not the tables of a zoo ({err})") from None
    train_pairs = read_table(path / manifest["train_pairs"])
    check_pairs = read_table(path / manifest["check_pairs"])
    weights = _read_weights(path / manifest["weights"])
    ensembles: dict[str, list[Predictor]] = {}
    todo = [(m, i, e) for m, entries in manifest["methods"].items()
            for i, e in enumerate(entries)]
    for method, i, entry in tqdm(todo, desc="re-derive fitted methods", disable=not progress):
        member = make_predictor(method, cfg, entry["seed"])
        if entry["state"] is None:
            member.fit(zoo, train_pairs)
        else:
            prefix = entry["state"]
            state = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
            if not state or not hasattr(member, "restore"):
                raise ValueError(f"{path}: method {method!r} member {i}: no learned state in "
                                 f"{manifest['weights']} to restore it from")
            member.restore(zoo, train_pairs, state)
        want = weights.get(f"check/{method}/{i}")
        got = np.asarray(member.predict(check_pairs, zoo), dtype=np.float64)
        if want is None or want.shape != got.shape:
            raise ValueError(f"{path}: method {method!r} member {i}: no saved check "
                             f"predictions of its {len(check_pairs)} check pairs")
        want = want.numpy()
        same_nan = np.isnan(got) & np.isnan(want)        # `score:<m>`: a pair without m is NaN
        if (diff := float(np.max(np.abs(np.where(same_nan, 0.0, got - want)), initial=0.0))) \
                > manifest["check_atol"] or not np.isfinite(diff):
            raise ValueError(
                f"{path}: method {method!r} member {i} re-derived with tpred "
                f"{tpred.__version__} predicts up to {diff:.3g} away from what it predicted "
                f"when saved (tpred {manifest['tpred_version']}); the code it is re-derived "
                f"with has changed, so retrain the run with `python -m tpred.train`")
        ensembles.setdefault(method, []).append(member)
    calibration = {m: _calibration_from_dict(c, path, manifest["format"])
                   for m, c in manifest["calibration"].items()}
    return {"format": manifest["format"], "tpred_version": manifest["tpred_version"], "config": cfg,
            "zoo": zoo, "seeds": list(manifest["seeds"]), "ensembles": ensembles,
            "calibration": calibration, "path": path,
            **{k: manifest.get(k) for k in ("created_utc", "config_sha256", "data_sha256")}}


def config_sha256(cfg: TrainConfig) -> str:
    """sha256 of the config as JSON with sorted keys (what a checkpoint records of its config)."""
    text = json.dumps(cfg.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def resolve_checkpoint(path: Path | str) -> Path:
    """The checkpoint at `path`: a checkpoint folder (holds `manifest.json`), the
    `checkpoint/` folder of a run folder, else an old `checkpoint.pkl` file (a pickle).

    Raises:
        ValueError: none of these is there.
    """
    path = Path(path)
    if path.is_dir():
        for candidate in (path, path / CHECKPOINT_NAME):
            if (candidate / MANIFEST).is_file():
                return candidate
        if (path / PICKLE_NAME).is_file():
            return path / PICKLE_NAME
    elif path.is_file():
        return path
    raise ValueError(f"{path}: no checkpoint here (a run folder holds {CHECKPOINT_NAME}/ with "
                     f"{MANIFEST}; `python -m tpred.train` writes it)")


def _load_pickle(path: Path, *, trust: bool) -> dict:
    """An old pickle checkpoint (format 3): only with `trust`."""
    if not trust:
        raise UntrustedFileError(
            f"{path}: a pickle file (a checkpoint of tpred before format {FORMAT} writes a "
            f"pickle); unpickling runs whatever code the file holds, so tpred loads it only "
            f"with --trust (trust=True) for a file you made or trust; then `tpred.load(..., "
            f"trust=True).save(folder)` rewrites it in the safe format")
    try:
        payload = joblib.load(path)
    except Exception as err:  # noqa: BLE001  (unpickling raises anything; report it as bad input)
        raise ValueError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") \
            from None
    if not isinstance(payload, dict) or payload.get("format") not in PICKLE_FORMATS:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(f"{path}: not a tpred checkpoint of format {list(PICKLE_FORMATS)} "
                         f"(found {found!r}; a checkpoint of an older tpred must be retrained "
                         f"with `python -m tpred.train`)")
    if missing := [k for k in ("config", "zoo", "ensembles") if k not in payload]:
        raise ValueError(f"{path}: a format-{payload['format']} checkpoint lacks {missing}")
    payload["config"] = TrainConfig.from_dict(_with_added_fields(payload["config"]),
                                              where=str(path))
    payload["path"] = path
    return payload


def _with_added_fields(config: Any) -> Any:
    """A saved config (`TrainConfig.to_dict()`) with the gnn fields it predates set to the
    values that reproduce it (`GNN_ADDED_FIELDS`); anything else is returned as is (and
    `from_dict` says what is wrong with it)."""
    if isinstance(config, dict) and isinstance(config.get("gnn"), dict):
        return {**config, "gnn": {**GNN_ADDED_FIELDS, **config["gnn"]}}
    return config


def _read_manifest(path: Path) -> dict:
    file = path / MANIFEST
    try:
        manifest = json.loads(file.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{file}: not a readable checkpoint manifest ({type(err).__name__}: "
                         f"{err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") not in FOLDER_FORMATS:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ValueError(f"{file}: not a tpred checkpoint of format "
                         f"{' or '.join(map(str, FOLDER_FORMATS))} (found {found!r})")
    keys = ("tpred_version", "config", "seeds", "methods", "calibration", "tables",
            "train_pairs", "check_pairs", "weights", "check_atol")
    if missing := [k for k in keys if k not in manifest]:
        raise ValueError(f"{file}: a format-{manifest['format']} manifest lacks {missing}")
    if missing := sorted({"models", "datasets", "records", "scores"} - set(manifest["tables"])):
        raise ValueError(f"{file}: 'tables' lacks {missing}")
    return manifest


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:  # noqa: BLE001  (safetensors raises its own error types)
        raise ValueError(f"{path}: not a readable safetensors file ({type(err).__name__}: "
                         f"{err})") from None


def _check_pairs(zoo: Zoo) -> pd.DataFrame:
    """Up to `NUM_CHECK_PAIRS` known pairs, evenly spread over the records (deterministic)."""
    pairs = zoo.known_pairs()
    if len(pairs) > NUM_CHECK_PAIRS:
        pairs = pairs.iloc[np.linspace(0, len(pairs) - 1, NUM_CHECK_PAIRS).round().astype(int)]
    return pairs.reset_index(drop=True)


def _calibration_to_dict(cal: Calibration) -> dict[str, Any]:
    return {"scale": _json_float(cal.scale), "floor": _json_float(cal.floor),
            "num_pairs": int(cal.num_pairs), "datasets": list(cal.datasets),
            "coverage_raw": [_json_float(v) for v in cal.coverage_raw],
            "coverage_calibrated": [_json_float(v) for v in cal.coverage_calibrated],
            "reference": _json_float(cal.reference), "level_weight": float(cal.level_weight)}


def _calibration_from_dict(values: dict[str, Any], path: Path, fmt: int = FORMAT
                           ) -> Calibration:
    """A manifest's calibration entry; format 4 has no reference spread (NaN: absolute std),
    formats 4 and 5 no level weight (0: no level term)."""
    try:
        return Calibration(float(values["scale"]), float(values["floor"]),
                           int(values["num_pairs"]), tuple(map(str, values["datasets"])),
                           tuple(map(float, values["coverage_raw"])),
                           tuple(map(float, values["coverage_calibrated"])),
                           float(values["reference"]) if fmt >= 5 else float("nan"),
                           float(values["level_weight"]) if fmt >= 6 else 0.0)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path / MANIFEST}: a calibration entry is malformed "
                         f"({type(err).__name__}: {err})") from None


def _json_float(value: float) -> float | str:
    """A float as JSON keeps it (NaN and ±inf as strings: JSON has no such numbers)."""
    value = float(value)
    return value if math.isfinite(value) else repr(value)


# ------------------------------------------------------------------------------ exact tables
def write_table(frame: pd.DataFrame, path: Path) -> dict[str, Any]:
    """Write `frame` (plain columns) as CSV so that `read_table` gives it back exactly.

    Each column is written as text: floats as their shortest exact decimal (`repr`), missing
    values as an empty cell; the schema returned (for the manifest) names each column's dtype
    and, for text columns, the rows that are missing (an empty text and a missing one would
    otherwise both be an empty cell).

    Returns:
        `{"file": name, "columns": [[column, dtype], ...], "missing": {column: [row, ...]}}`.
    """
    cells, columns, missing = {}, [], {}
    for name in frame.columns:
        col = frame[name]
        kind = _kind(col)
        values = col.to_numpy(dtype=object)
        isna = pd.isna(col).to_numpy()
        if kind == "float":
            cells[name] = ["" if m else repr(float(v)) for v, m in zip(values, isna, strict=True)]
        elif kind in ("int", "bool"):
            cells[name] = [str(v) for v in values]
        else:
            cells[name] = ["" if m else str(v) for v, m in zip(values, isna, strict=True)]
            if isna.any():
                missing[str(name)] = np.flatnonzero(isna).tolist()
        columns.append([str(name), str(col.dtype) if kind == "text" else kind])
    # every cell quoted: a text holding a lone carriage return survives only inside quotes
    pd.DataFrame(cells, columns=list(frame.columns), dtype=object).to_csv(
        path, index=False, quoting=csv.QUOTE_ALL, lineterminator="\n")
    return {"file": path.name, "columns": columns, "missing": missing}


def read_table(path: Path, schema: dict[str, Any] | None = None) -> pd.DataFrame:
    """A table written by `write_table` (`schema`: what it returned; None: every column text).

    Raises:
        ValueError: a missing or unreadable file, or one that does not match its schema.
    """
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable table ({type(err).__name__}: {err})") from None
    if schema is None:
        return pd.DataFrame({c: raw[c].astype(str) for c in raw.columns})
    names = [c for c, _ in schema["columns"]]
    if list(raw.columns) != names:
        raise ValueError(f"{path}: columns {list(raw.columns)} differ from the manifest's {names}")
    out = {}
    for name, kind in schema["columns"]:
        text = raw[name].tolist()
        try:
            if kind == "float":
                out[name] = np.array([float(t) if t else np.nan for t in text], dtype=np.float64)
            elif kind == "int":
                out[name] = np.array([int(t) for t in text], dtype=np.int64)
            elif kind == "bool":
                if bad := sorted(set(text) - {"True", "False"}):
                    raise ValueError(f"not a bool: {bad[0]!r}")
                out[name] = np.array([t == "True" for t in text], dtype=bool)
            else:
                values = np.array(text, dtype=object)
                values[schema["missing"].get(name, [])] = np.nan
                out[name] = pd.Series(values, dtype=object).astype(kind)  # keeps the dtype
        except (ValueError, TypeError, IndexError) as err:
            raise ValueError(f"{path}, column {name!r}: does not hold {kind} values as the "
                             f"manifest says ({err})") from None
    return pd.DataFrame(out, columns=names)


def _kind(col: pd.Series) -> str:
    """How `write_table` stores a column: float, int, bool, or text."""
    if pd.api.types.is_bool_dtype(col.dtype) and not col.isna().any():
        return "bool"
    if pd.api.types.is_integer_dtype(col.dtype) and not col.isna().any():
        return "int"
    if pd.api.types.is_float_dtype(col.dtype) or pd.api.types.is_numeric_dtype(col.dtype):
        return "float"
    return "text"
