"""Metrics against values computed by hand on tiny frames and matrices."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tpred.errors import UndefinedMetricWarning
from tpred.evaluation.metrics import (
    PAPER,
    paper_matrices,
    paper_metrics,
    per_dataset_metrics,
    summarize,
    top1_regret,
)


@pytest.fixture
def frame() -> pd.DataFrame:
    """3 datasets x 3 models: perfect order, reversed order, and a mixed case.

    d3: true [0.5, 0.7, 0.6], predicted [0.3, 0.2, 0.1].
      Pearson: centred true [-.1, .1, 0], predicted [.1, 0, -.1] -> -0.01 / 0.02 = -0.5.
      Spearman: ranks [1, 3, 2] vs [3, 2, 1], sum d^2 = 6 -> 1 - 36/24 = -0.5.
      Kendall: pairs (1,2) D, (1,3) D, (2,3) C -> -1/3.
      Weighted tau, hyperbolic weights 1/(r+1), additive pair weight w_i + w_j:
        ranked by true (m2, m3, m1): +1.5 - 4/3 - 5/6 over 22/6 -> -2/11;
        ranked by predicted (m1, m2, m3): -1.5 - 4/3 + 5/6 over 22/6 -> -6/11;
        scipy's default (rank=True) averages both -> -4/11.
      Regret: predicted best m1 (true 0.5), true best 0.7 -> 0.2.
    """
    return pd.DataFrame({
        "model": ["m1", "m2", "m3"] * 3,
        "dataset": ["d1"] * 3 + ["d2"] * 3 + ["d3"] * 3,
        "true": [0.9, 0.8, 0.7, 0.9, 0.8, 0.7, 0.5, 0.7, 0.6],
        "predicted": [0.6, 0.5, 0.4, 0.4, 0.5, 0.6, 0.3, 0.2, 0.1],
    })


EXPECTED = pd.DataFrame(
    {"num_models": [3, 3, 3],
     "pearson": [1.0, -1.0, -0.5], "spearman": [1.0, -1.0, -0.5],
     "kendall": [1.0, -1.0, -1 / 3], "weighted_tau": [1.0, -1.0, -4 / 11],
     "top1_regret": [0.0, 0.2, 0.2]},
    index=pd.Index(["d1", "d2", "d3"], name="dataset"))


def test_per_dataset_metrics_match_hand_computed_values(frame):
    pd.testing.assert_frame_equal(per_dataset_metrics(frame), EXPECTED, atol=1e-12,
                                  check_dtype=False)


def test_summarize_averages_datasets_and_adds_global_metrics(frame):
    out = summarize(frame)
    expected = EXPECTED.drop(columns="num_models").mean().to_dict()
    # errors: d1 [-.3, -.3, -.3], d2 [-.5, -.3, -.1], d3 [-.2, -.5, -.5]
    expected |= {"rmse": np.sqrt(1.16 / 9), "mae": 3.0 / 9,
                 "global_pearson": np.corrcoef(frame["true"], frame["predicted"])[0, 1]}
    assert set(out) == set(expected)
    assert all(isinstance(v, float) for v in out.values())
    for key, value in expected.items():
        assert out[key] == pytest.approx(value, abs=1e-12), key
    assert out["pearson"] == pytest.approx(-1 / 6) and out["weighted_tau"] == pytest.approx(-4 / 33)


def test_weighted_tau_is_symmetric_in_its_arguments(frame):
    swapped = frame.rename(columns={"true": "predicted", "predicted": "true"})
    assert per_dataset_metrics(swapped)["weighted_tau"].tolist() == pytest.approx(
        EXPECTED["weighted_tau"].tolist())


def test_top1_regret_takes_the_mean_over_tied_predicted_best():
    # m1 and m2 tie for the best prediction: mean true 0.7; true best 0.9
    assert top1_regret([0.9, 0.5, 0.7], [0.3, 0.3, 0.1]) == pytest.approx(0.2)
    assert top1_regret([0.4], [0.1]) == 0.0
    with pytest.raises(ValueError, match="1-D of one length"):
        top1_regret([0.1, 0.2], [0.1])


def test_a_dataset_with_one_model_is_nan_with_a_warning(frame):
    one = pd.concat([frame, pd.DataFrame({"model": ["m1"], "dataset": ["d4"], "true": [0.5],
                                          "predicted": [0.4]})])
    with pytest.warns(UndefinedMetricWarning, match="undefined .* 1 dataset.*: d4"):
        per = per_dataset_metrics(one)
    assert per.loc["d4"].drop("num_models").isna().all()
    with pytest.warns(UndefinedMetricWarning, match="averaged over 3 of 4 datasets; 1 "
                                                    "undefined skipped: d4"):
        out = summarize(one)
    assert out["spearman"] == pytest.approx(-1 / 6)                   # d4 skipped, never 0


def test_constant_predictions_give_nan_correlations_but_a_regret(frame):
    const = frame.assign(predicted=np.where(frame["dataset"] == "d3", 0.5, frame["predicted"]))
    with pytest.warns(UndefinedMetricWarning, match="constant"):
        per = per_dataset_metrics(const)
    assert per.loc["d3", ["pearson", "spearman", "kendall", "weighted_tau"]].isna().all()
    assert per.loc["d3", "top1_regret"] == pytest.approx(0.7 - 0.6)    # mean of all three


def test_all_undefined_gives_nan_means_and_global_pearson():
    flat = pd.DataFrame({"dataset": ["a", "b"], "true": [0.5, 0.5], "predicted": [0.2, 0.2]})
    with pytest.warns(UndefinedMetricWarning):
        out = summarize(flat)
    assert np.isnan(out["spearman"]) and np.isnan(out["global_pearson"])
    assert out["rmse"] == pytest.approx(0.3) and out["mae"] == pytest.approx(0.3)


def test_bad_frames_raise(frame):
    with pytest.raises(ValueError, match=r"missing column\(s\) \['predicted'\]"):
        summarize(frame.drop(columns="predicted"))
    with pytest.raises(ValueError, match="column 'predicted' must be finite numbers"):
        per_dataset_metrics(frame.assign(predicted=[np.nan] + [0.1] * 8))


# -------------------------------------------------------------------------------- paper
def _paper_case():
    """5 models x 10 columns with 5, 4, 4, 3, 3, 2, 2, 1, 1, 0 unknown cells (shuffled).

    Truth of every column is [.1, .2, .3, .4, .5]; Spearman of each filled column by hand
    (1 - 6 sum d^2 / 120):
      A  5 unknown, predicted [.5 .4 .3 .2 .1]            -> -1
      B1 4 unknown, filled [.1 .9 .8 .7 .6], d^2 = 20     ->  0;  B2 perfect -> 1
      C1 3 unknown, filled [.1 .2 .5 .4 .3], d^2 = 8      -> .6;  C2 perfect -> 1
      D1 2 unknown, filled [.1 .2 .3 .5 .4], d^2 = 2      -> .9;
      D2 2 unknown, filled [.1 .2 .3 0 .05], d^2 = 30     -> -.5
      E1 1 unknown, filled [.1 .2 .3 .4 .45]              ->  1;
      E2 1 unknown, filled [.1 .2 .3 .4 0], d^2 = 20      ->  0
      F  0 unknown                                        ->  1
    Cuts int(t * 10) = 0, 1, 3, 5, 7, 9, 10 give buckets {A}, {B1, B2}, {C1, C2}, {D1, D2},
    {E1, E2}, {F}: -1, 0.5, 0.8, 0.2, 0.5, 1.
    """
    truth = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    columns = {  # name: (unknown rows, predictions at those rows)
        "A": ([0, 1, 2, 3, 4], [0.5, 0.4, 0.3, 0.2, 0.1]),
        "B1": ([1, 2, 3, 4], [0.9, 0.8, 0.7, 0.6]), "B2": ([1, 2, 3, 4], [0.2, 0.3, 0.4, 0.5]),
        "C1": ([2, 3, 4], [0.5, 0.4, 0.3]), "C2": ([2, 3, 4], [0.3, 0.4, 0.5]),
        "D1": ([3, 4], [0.5, 0.4]), "D2": ([3, 4], [0.0, 0.05]),
        "E1": ([4], [0.45]), "E2": ([4], [0.0]), "F": ([], []),
    }
    order = ["E1", "A", "C2", "F", "B1", "D2", "C1", "E2", "B2", "D1"]   # not sorted
    true = np.tile(truth[:, None], (1, 10))                              # [5, 10]
    pred = np.full((5, 10), 7.0)            # garbage at known cells: must be ignored
    known = np.ones((5, 10), dtype=bool)
    for j, name in enumerate(order):
        rows, values = columns[name]
        pred[rows, j] = values
        known[rows, j] = False
    return true, pred, known


def test_paper_buckets_match_hand_computed_spearman():
    true, pred, known = _paper_case()
    out = paper_metrics(true, pred, known)
    assert list(out) == list(PAPER)
    expected = {"bucket_0_10": -1.0, "bucket_10_30": 0.5, "bucket_30_50": 0.8,
                "bucket_50_70": 0.2, "bucket_70_90": 0.5, "bucket_90_100": 1.0}
    for key, value in expected.items():
        assert out[key] == pytest.approx(value, abs=1e-12), key


def test_paper_avg_pearson_is_the_mean_of_filled_column_correlations():
    true, pred, known = _paper_case()
    filled = np.where(known, true, pred)
    expected = np.mean([np.corrcoef(true[:, j], filled[:, j])[0, 1] for j in range(10)])
    assert paper_metrics(true, pred, known)["avg_pearson"] == pytest.approx(expected, abs=1e-12)
    perfect = paper_metrics(true, true, known)
    assert all(v == pytest.approx(1.0) for v in perfect.values())


def test_paper_counts_a_known_zero_accuracy_as_unknown_like_the_script():
    # 2 models x 10 columns; column 5 is fully known but its model-0 accuracy is 0, so the
    # script's zero count ranks it with the one-unknown columns: it must land in bucket 0 only
    # if it has the most zeros -> make every other column fully known with no zero.
    true = np.tile(np.array([[0.2], [0.4]]), (1, 10))
    true[0, 5] = 0.0
    known = np.ones((2, 10), dtype=bool)
    pred = true.copy()
    pred[:, 5] = [0.9, 0.1]                 # ignored: the cell values are known
    out = paper_metrics(true, pred, known)
    assert out["bucket_0_10"] == pytest.approx(1.0)                     # column 5, truth filled
    known[:, 3] = False
    pred[:, 3] = [0.9, 0.1]                 # reversed: Spearman -1; 2 zeros beats column 5's 1
    assert paper_metrics(true, pred, known)["bucket_0_10"] == pytest.approx(-1.0)


def test_paper_undefined_columns_give_nan_with_a_warning():
    true, pred, known = _paper_case()
    true[:, 0] = 0.3                         # column E1: constant truth (bucket 70-90)
    with pytest.warns(UndefinedMetricWarning) as record:
        out = paper_metrics(true, pred, known)
    messages = [str(w.message) for w in record]
    assert any("undefined (NaN) for 1 of 10 column" in m for m in messages)
    assert any("bucket_70_90 is undefined" in m for m in messages)
    assert np.isnan(out["bucket_70_90"])     # the script's np.mean propagates the NaN
    assert not np.isnan(out["avg_pearson"])  # its np.nanmean skips it
    assert out["bucket_0_10"] == pytest.approx(-1.0)


def test_paper_metrics_errors():
    true, pred, known = _paper_case()
    with pytest.raises(ValueError, match="share one shape"):
        paper_metrics(true, pred[:, :9], known)
    with pytest.raises(ValueError, match="M >= 2"):
        paper_metrics(true[:1], pred[:1], known[:1])
    pred[0, 1] = np.nan                      # an unknown cell (column A)
    with pytest.raises(ValueError, match="must be finite"):
        paper_metrics(true, pred, known)


def test_paper_matrices_round_trip_long_frames():
    true, pred, known = _paper_case()
    models, datasets = [f"m{i}" for i in range(5)], [f"d{j}" for j in range(10)]
    grid = pd.DataFrame({"model": np.repeat(models, 10), "dataset": np.tile(datasets, 5),
                         "true": true.ravel(), "predicted": pred.ravel()})
    flat = known.ravel()
    t, p, k = paper_matrices(grid[~flat], grid[flat].drop(columns="predicted"), models, datasets)
    np.testing.assert_array_equal(t, true)
    np.testing.assert_array_equal(k, known)
    np.testing.assert_array_equal(p, np.where(known, true, pred))
    with pytest.raises(ValueError, match="exactly once; 1 missing"):
        paper_matrices(grid[~flat].iloc[1:], grid[flat], models, datasets)
    with pytest.raises(ValueError, match="model .m4. is not in the given models"):
        paper_matrices(grid[~flat], grid[flat], models[:4], datasets)


# -------------------------------------------------------------- equal to the scipy functions
@pytest.mark.parametrize("seed", range(3))
def test_per_dataset_metrics_equal_scipy_on_random_tied_data(seed):
    """The vectorised metrics are the scipy functions the module docstring names."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 13, size=40)
    dataset = np.repeat([f"d{i}" for i in range(40)], sizes)
    levels = rng.integers(2, 6, size=len(dataset))          # few levels: many ties
    frame = pd.DataFrame({"dataset": dataset,
                          "true": rng.integers(0, 5, len(dataset)) / levels,
                          "predicted": rng.integers(0, 4, len(dataset)) / 4})
    frame = frame.sample(frac=1.0, random_state=seed)        # groups interleaved
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        per = per_dataset_metrics(frame)
    for name, group in frame.groupby("dataset"):
        t, p = group["true"].to_numpy(), group["predicted"].to_numpy()
        row = per.loc[name]
        assert row["num_models"] == len(t)
        assert row["top1_regret"] == pytest.approx(t.max() - t[p == p.max()].mean())
        if np.ptp(t) == 0 or np.ptp(p) == 0:
            assert row[["pearson", "spearman", "kendall", "weighted_tau"]].isna().all()
            continue
        assert row["pearson"] == pytest.approx(stats.pearsonr(t, p).statistic, abs=1e-12)
        assert row["spearman"] == pytest.approx(stats.spearmanr(t, p).statistic, abs=1e-12)
        assert row["kendall"] == pytest.approx(stats.kendalltau(t, p).statistic, abs=1e-12)
        assert row["weighted_tau"] == pytest.approx(stats.weightedtau(t, p).statistic,
                                                    abs=1e-12)


def test_paper_metrics_equal_the_script_s_scipy_loop():
    rng = np.random.default_rng(0)
    true = rng.integers(1, 20, size=(10, 30)) / 20                        # ties, as DomainNet
    pred = rng.random((10, 30))
    known = rng.random((10, 30)) < np.linspace(0, 0.9, 30)
    out = paper_metrics(true, pred, known)
    filled = np.where(known, true, pred)
    pearson = [stats.pearsonr(true[:, j], filled[:, j]).statistic for j in range(30)]
    spearman = np.array([stats.spearmanr(true[:, j], filled[:, j]).statistic
                         for j in range(30)])
    assert out["avg_pearson"] == pytest.approx(np.nanmean(pearson), abs=1e-12)
    order = np.argsort(-np.sum(np.where(known, true, 0) == 0, axis=0))
    for key, lo, hi in [("bucket_0_10", 0, 3), ("bucket_10_30", 3, 9), ("bucket_90_100", 27, 30)]:
        assert out[key] == pytest.approx(np.mean(spearman[order[lo:hi]]), abs=1e-12)
