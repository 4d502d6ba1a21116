"""Ranking and regression metrics of predicted against true accuracies.

Held-out protocols (`summarize`): per held-out dataset, the correlation of predicted with true
accuracy over its held-out models and the top-1 regret, averaged over datasets; plus RMSE, MAE and
Pearson over all held-out pairs. The paper protocol (`paper_metrics`): the released SCG4Trf
script's per-column Pearson and bucketed Spearman.

Conventions — each metric equals the scipy 1.17 function named (computed vectorised over
datasets; tests/evaluation/test_metrics.py checks the equality on random data with ties):

- `pearson`: `scipy.stats.pearsonr`; `spearman`: `scipy.stats.spearmanr` (average ranks for
  ties); `kendall`: `scipy.stats.kendalltau` (tau-b, tie-corrected).
- `weighted_tau`: `scipy.stats.weightedtau(true, predicted)` with its defaults — hyperbolic
  weigher 1/(r + 1), additive weights, `rank=True`: the mean of the weighted tau with ranks by
  decreasing true accuracy and with ranks by decreasing prediction (so an error among the top
  models, by either, weighs most). Symmetric in its arguments.
- `top1_regret`: true best accuracy − true accuracy of the predicted best model (accuracy units,
  lower is better). When several models tie for the best prediction, the mean of their true
  accuracies is used (the expected regret of picking one of them at random), so the value does
  not depend on row order.

A metric undefined for a group — fewer than 2 held-out models, or a constant true or predicted
column for a correlation — is NaN with an `UndefinedMetricWarning` naming the groups, never 0.
Averages over datasets skip NaN (`nanmean`) and warn with the count skipped.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from tpred.data.ids import check_known_ids
from tpred.errors import UndefinedMetricWarning

#: per-dataset metrics, in `per_dataset_metrics`' column order
PER_DATASET = ("pearson", "spearman", "kendall", "weighted_tau", "top1_regret")
#: metrics over all held-out pairs
GLOBAL = ("rmse", "mae", "global_pearson")
#: the released script's bucket cuts (fractions of the columns, sorted by unknown cells)
PAPER_THRESHOLDS = (0, 0.1, 0.3, 0.5, 0.7, 0.9, 1)
#: `paper_metrics`' keys
PAPER = ("avg_pearson",) + tuple(
    f"bucket_{round(100 * lo)}_{round(100 * hi)}"
    for lo, hi in zip(PAPER_THRESHOLDS[:-1], PAPER_THRESHOLDS[1:], strict=True))

#: bound on rows x n x n of the pairwise arrays built at once (memory)
_CHUNK = 2_000_000


# ------------------------------------------------------------------------------ held-out
def top1_regret(true: Sequence[float], predicted: Sequence[float]) -> float:
    """True best accuracy − true accuracy of the predicted best (mean over tied predictions).

    Shapes: true [N], predicted [N] with N >= 1. Returns a Python float (>= 0).
    """
    true, predicted = _pair_arrays(true, predicted, "top1_regret", min_len=1)
    chosen = predicted == predicted.max()
    return float(true.max() - true[chosen].mean())


def per_dataset_metrics(frame: pd.DataFrame) -> pd.DataFrame:
    """Pearson, Spearman, Kendall τ, weighted τ and top-1 regret of each dataset's pairs.

    Args:
        frame: one row per held-out pair, columns `dataset`, `true`, `predicted` (others
            ignored).

    Returns:
        One row per dataset (index `dataset`, first-appearance order), columns `num_models` and
        `PER_DATASET`. A dataset with fewer than 2 rows has NaN everywhere; a correlation with a
        constant true or predicted column is NaN (an `UndefinedMetricWarning` per metric names
        the datasets).

    Raises:
        ValueError: missing column, or a non-finite true/predicted value.
    """
    frame = _check_frame(frame, ["dataset", "true", "predicted"], "per_dataset_metrics")
    codes, names = pd.factorize(frame["dataset"])                 # first-appearance order
    order = np.argsort(codes, kind="stable")
    true = frame["true"].to_numpy(dtype=np.float64)[order]                  # [P] by dataset
    pred = frame["predicted"].to_numpy(dtype=np.float64)[order]
    sizes = np.bincount(codes, minlength=len(names))                        # [G]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    values = {name: np.full(len(names), np.nan) for name in PER_DATASET}
    for n in np.unique(sizes[sizes >= 2]):
        groups = np.flatnonzero(sizes == n)
        idx = starts[groups][:, None] + np.arange(n)                          # [G_n, n]
        for name, column in _row_metrics(true[idx], pred[idx]).items():
            values[name][groups] = column
    undefined = {name: list(names[np.isnan(v)]) for name, v in values.items()}
    for name, datasets in undefined.items():
        if datasets:
            why = "fewer than 2 models" if name == "top1_regret" else (
                "fewer than 2 models or constant true/predicted accuracy")
            warnings.warn(f"{name} is undefined (NaN) for {len(datasets)} dataset(s) with {why}: "
                          f"{_some(datasets)}", UndefinedMetricWarning, stacklevel=2)
    out = pd.DataFrame({"num_models": sizes, **values}, index=pd.Index(names, name="dataset"))
    return out


def summarize(frame: pd.DataFrame) -> dict[str, float]:
    """Every held-out metric of one run: per-dataset metrics averaged, plus global ones.

    Args:
        frame: one row per held-out pair, columns `dataset`, `true`, `predicted`.

    Returns:
        `{pearson, spearman, kendall, weighted_tau, top1_regret}`: unweighted means over datasets
        of `per_dataset_metrics`, NaN skipped (with a warning counting them; NaN if every dataset
        is NaN); `rmse`, `mae`: over all pairs; `global_pearson`: Pearson over all pairs (NaN
        with a warning for fewer than 2 pairs or a constant column). Python floats.
    """
    frame = _check_frame(frame, ["dataset", "true", "predicted"], "summarize")
    with warnings.catch_warnings():  # one warning per metric below, with the count
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        per = per_dataset_metrics(frame)
    out: dict[str, float] = {}
    for name in PER_DATASET:
        values = per[name].to_numpy(dtype=np.float64)
        defined = ~np.isnan(values)
        if not defined.all():
            warnings.warn(f"{name}: averaged over {int(defined.sum())} of {len(values)} "
                          f"datasets; {int((~defined).sum())} undefined skipped: "
                          f"{_some(per.index[~defined].tolist())}",
                          UndefinedMetricWarning, stacklevel=2)
        out[name] = float(values[defined].mean()) if defined.any() else float("nan")
    t = frame["true"].to_numpy(dtype=np.float64)
    p = frame["predicted"].to_numpy(dtype=np.float64)
    err = p - t
    out["rmse"] = float(np.sqrt(np.mean(err**2))) if len(t) else float("nan")
    out["mae"] = float(np.mean(np.abs(err))) if len(t) else float("nan")
    if len(t) < 2 or np.ptp(t) == 0 or np.ptp(p) == 0:
        warnings.warn(f"global_pearson is undefined (NaN) for {len(t)} pair(s) with a constant "
                      f"true or predicted column", UndefinedMetricWarning, stacklevel=2)
        out["global_pearson"] = float("nan")
    else:
        out["global_pearson"] = float(stats.pearsonr(t, p).statistic)
    return out


# --------------------------------------------------------------------------------- paper
def paper_metrics(true_matrix: np.ndarray, pred_matrix: np.ndarray,
                  known_mask: np.ndarray) -> dict[str, float]:
    """The released SCG4Trf script's scores (`scgat.py`, davechenxy/ModelRecommendation).

    The scored matrix is `true_matrix` where `known_mask` and `pred_matrix` elsewhere.

    - `avg_pearson`: per column, Pearson over all M models between the true and the scored
      column; mean over columns skipping NaN (the script's `np.nanmean`).
    - `bucket_<lo>_<hi>`: columns ordered by their count of zeros in the script's "input
      matrix" (known cells hold the true accuracy, the others 0 — so the number of unknown
      cells, plus known cells whose accuracy is exactly 0), descending, with the script's
      `np.argsort(-counts)` (numpy's default sort; ties keep whatever order it gives), then cut
      at `int(t * T)` for t = 0, 0.1, 0.3, 0.5, 0.7, 0.9, 1; each bucket is the plain mean of
      per-column Spearman (`np.mean`: one NaN column makes the bucket NaN, as in the script).
      On DomainNet-270 `bucket_0_10` is the 27 columns without any known cell ("Cold Start").

    Columns should be in the original matrix's order (`Split.context["datasets"]`) for ties to
    be broken exactly as the script breaks them; on 10 × 270 the cuts fall between groups of
    equal counts, so the order does not matter there.

    Shapes: true_matrix, pred_matrix, known_mask [M, T] (models × datasets); M >= 2.
    Returns: `{avg_pearson, bucket_0_10, ..., bucket_90_100}` as Python floats; an undefined
    column or bucket gives NaN with an `UndefinedMetricWarning`.

    Raises:
        ValueError: shapes differ or are not 2-D with M >= 2; non-finite values.
    """
    true = np.asarray(true_matrix, dtype=np.float64)
    pred = np.asarray(pred_matrix, dtype=np.float64)
    known = np.asarray(known_mask, dtype=bool)
    if true.ndim != 2 or true.shape[0] < 2 or pred.shape != true.shape \
            or known.shape != true.shape:
        raise ValueError(f"paper_metrics: true_matrix, pred_matrix and known_mask must share one "
                         f"shape [M, T] with M >= 2, got {true.shape}, {pred.shape}, "
                         f"{known.shape}")
    if not np.isfinite(true).all() or not np.isfinite(pred[~known]).all():
        raise ValueError("paper_metrics: true_matrix and pred_matrix (at unknown cells) must be "
                         "finite")
    scored = np.where(known, true, pred)                                         # [M, T]
    num_cols = true.shape[1]
    per_column = _row_metrics(true.T, scored.T, regret=False)                 # [T] each
    pearson, spearman = per_column["pearson"], per_column["spearman"]
    defined = ~np.isnan(pearson)
    if not defined.all():
        warnings.warn(f"paper_metrics: Pearson/Spearman undefined (NaN) for "
                      f"{int((~defined).sum())} of {num_cols} column(s) with a constant true or "
                      f"scored column: {_some(np.flatnonzero(~defined).tolist())}",
                      UndefinedMetricWarning, stacklevel=2)
    out = {"avg_pearson": float(pearson[defined].mean()) if defined.any() else float("nan")}
    zero_counts = np.sum(np.where(known, true, 0.0) == 0, axis=0)               # [T]
    order = np.argsort(-zero_counts)
    for key, lo, hi in zip(PAPER[1:], PAPER_THRESHOLDS[:-1], PAPER_THRESHOLDS[1:],
                           strict=True):
        cols = order[int(lo * num_cols):int(hi * num_cols)]
        if len(cols) == 0 or np.isnan(spearman[cols]).any():
            warnings.warn(f"paper_metrics: {key} is undefined (NaN): "
                          f"{'no columns' if len(cols) == 0 else 'a column has no Spearman'}",
                          UndefinedMetricWarning, stacklevel=2)
            out[key] = float("nan")
        else:
            out[key] = float(np.mean(spearman[cols]))
    return out


def paper_matrices(test: pd.DataFrame, train: pd.DataFrame, models: Sequence[str],
                   datasets: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Matrices for `paper_metrics` from long frames of one paper split.

    Args:
        test: scored pairs, columns `model, dataset, true, predicted`.
        train: known pairs, columns `model, dataset, true`.
        models, datasets: row and column order (`Split.context["models"/"datasets"]`).

    Returns:
        (true_matrix, pred_matrix, known_mask), each [M, T]; pred_matrix holds the true value
        at known cells.

    Raises:
        ValueError: a pair outside `models × datasets`, a cell covered twice or not at all.
    """
    test = _check_frame(test, ["model", "dataset", "true", "predicted"], "paper_matrices")
    train = _check_frame(train, ["model", "dataset", "true"], "paper_matrices")
    rows, cols = pd.Index(models), pd.Index(datasets)
    shape = (len(rows), len(cols))
    true, pred = np.full(shape, np.nan), np.full(shape, np.nan)
    known = np.zeros(shape, dtype=bool)
    seen = np.zeros(shape, dtype=int)
    for frame, is_known in ((train, True), (test, False)):
        check_known_ids(frame, {"model": rows, "dataset": cols}, "paper_matrices",
                        problem="is not in the given {kind}s")
        r = rows.get_indexer(frame["model"])
        c = cols.get_indexer(frame["dataset"])
        np.add.at(seen, (r, c), 1)
        true[r, c] = frame["true"].to_numpy(dtype=np.float64)
        value = frame["true" if is_known else "predicted"].to_numpy(dtype=np.float64)
        pred[r, c] = value
        known[r, c] = is_known
    if (seen != 1).any():
        raise ValueError(f"paper_matrices: train and test must cover each of the {shape[0]} x "
                         f"{shape[1]} cells exactly once; {int((seen == 0).sum())} missing, "
                         f"{int((seen > 1).sum())} covered more than once")
    return true, pred, known


# ------------------------------------------------------------------------------- helpers
def _row_metrics(true: np.ndarray, pred: np.ndarray, *, regret: bool = True
                 ) -> dict[str, np.ndarray]:
    """`_row_block_metrics` in blocks of rows, keeping the [rows, n, n] arrays small."""
    step = max(1, _CHUNK // max(1, true.shape[1] ** 2))
    blocks = [_row_block_metrics(true[i:i + step], pred[i:i + step], regret=regret)
              for i in range(0, len(true), step)]
    return {name: np.concatenate([b[name] for b in blocks]) for name in blocks[0]}


def _row_block_metrics(true: np.ndarray, pred: np.ndarray, *, regret: bool = True
                       ) -> dict[str, np.ndarray]:
    """Every per-dataset metric of each row at once (one row = one group of n >= 2 pairs).

    Exact re-statements of the scipy functions named in the module docstring, vectorised over
    rows (checked against them in tests/evaluation/test_metrics.py): Pearson; Spearman =
    Pearson of average ranks; Kendall tau-b = sum s_t s_p / sqrt(sum |s_t| sum |s_p|) over pairs,
    s = sign of the pairwise difference; weighted tau as `_weighted_tau`. A row with a constant
    true or predicted value gets NaN correlations.

    Shapes: true, pred [R, n]; returns arrays [R].
    """
    constant = (np.ptp(true, axis=1) == 0) | (np.ptp(pred, axis=1) == 0)     # [R]
    sign_t = np.sign(true[:, :, None] - true[:, None, :])                     # [R, n, n]
    sign_p = np.sign(pred[:, :, None] - pred[:, None, :])
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {
            "pearson": _pearson(true, pred),
            "spearman": _pearson(_average_ranks(true), _average_ranks(pred)),
            "kendall": (sign_t * sign_p).sum((1, 2))
            / np.sqrt(np.abs(sign_t).sum((1, 2)) * np.abs(sign_p).sum((1, 2))),
            "weighted_tau": (_weighted_tau(true, pred, sign_t, sign_p)
                             + _weighted_tau(pred, true, sign_p, sign_t)) / 2,
        }
    for value in out.values():
        value[constant] = np.nan
    if regret:
        chosen = pred == pred.max(axis=1, keepdims=True)                      # [R, n]
        out["top1_regret"] = true.max(axis=1) - (true * chosen).sum(1) / chosen.sum(1)
    return out


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation. Shapes: a, b [R, n]; returns [R]."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    r = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))
    return np.clip(r, -1.0, 1.0)  # rounding can step past ±1 by an ulp, as scipy clips too


def _average_ranks(a: np.ndarray) -> np.ndarray:
    """Row-wise 1-based ranks, ties given their average (scipy's rankdata 'average')."""
    less = (a[:, None, :] < a[:, :, None]).sum(-1)                            # [R, n]
    equal = (a[:, None, :] == a[:, :, None]).sum(-1)                          # itself included
    return less + (equal + 1) / 2


def _weighted_tau(rank_by: np.ndarray, other: np.ndarray, sign_r: np.ndarray,
                  sign_o: np.ndarray) -> np.ndarray:
    """Vigna's weighted tau with elements ranked by decreasing (rank_by, other), row-wise.

    Rank r = position in that order (0-based), weight 1 / (r + 1) (hyperbolic), pair weight
    w_i + w_j (additive); tau = sum w s_r s_o / sqrt(sum w |s_r| sum w |s_o|) — scipy's
    `weightedtau(rank_by, other, rank=None)`. Shapes: [R, n] and signs [R, n, n]; returns [R].
    """
    position = np.lexsort((-other, -rank_by), axis=-1)                       # [R, n]
    rank = np.argsort(position, axis=-1)
    w = 1.0 / (rank + 1)
    pair = w[:, :, None] + w[:, None, :]                                      # [R, n, n]
    return (pair * sign_r * sign_o).sum((1, 2)) / np.sqrt(
        (pair * np.abs(sign_r)).sum((1, 2)) * (pair * np.abs(sign_o)).sum((1, 2)))


def _check_frame(frame: pd.DataFrame, columns: list[str], caller: str) -> pd.DataFrame:
    if missing := [c for c in columns if c not in frame.columns]:
        raise ValueError(f"{caller}: frame is missing column(s) {missing}; found "
                         f"{list(frame.columns)}")
    for c in ("true", "predicted"):
        if c in columns:
            values = pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=np.float64)
            if (bad := ~np.isfinite(values)).any():
                i = int(np.flatnonzero(bad)[0])
                raise ValueError(f"{caller}: column {c!r} must be finite numbers, got "
                                 f"{frame[c].iloc[i]!r} at row {i} ({int(bad.sum())} bad)")
    return frame


def _pair_arrays(true, predicted, caller: str, *, min_len: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(true, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    if t.ndim != 1 or t.shape != p.shape or len(t) < min_len:
        raise ValueError(f"{caller}: true and predicted must be 1-D of one length >= {min_len}, "
                         f"got shapes {t.shape} and {p.shape}")
    return t, p


def _some(items: list, limit: int = 5) -> str:
    """The first few items of a list for a message."""
    head = ", ".join(map(str, items[:limit]))
    return head + (f", ... ({len(items)} in all)" if len(items) > limit else "")
