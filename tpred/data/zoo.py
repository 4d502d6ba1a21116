"""`Zoo`: the validated tables of a model zoo and the lookups every other module uses."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from tpred.data.ids import check_known_ids

PAIR = ["model", "dataset"]


class Zoo:
    """Validated tables of a model zoo.

    Attributes:
        models: metadata, one row per model, index named `model` (str ids).
        datasets: metadata, one row per dataset, index named `dataset` (str ids).
        records: known fine-tuning results, columns `model, dataset, accuracy` (float in [0, 1]),
            one row per pair; every id is in `models`/`datasets`.
        scores: transferability scores in long form, columns `model, dataset, metric, value`
            (float, finite); a pair may lack some or all metrics. Empty when there are none.

    `Zoo.from_frames` checks ids, duplicates and ranges of frames already in memory; reading files
    (and every error message about a file) is `tpred.data.tables`' job (`tpred.data.load_zoo`).
    """

    def __init__(self, models: pd.DataFrame, datasets: pd.DataFrame, records: pd.DataFrame,
                 scores: pd.DataFrame | None = None) -> None:
        self.models = models
        self.datasets = datasets
        self.records = records
        self.scores = (scores if scores is not None
                       else pd.DataFrame({c: pd.Series(dtype=t) for c, t in
                                          [("model", str), ("dataset", str), ("metric", str),
                                           ("value", float)]}))
        self._accuracy = pd.Series(records["accuracy"].to_numpy(dtype=np.float64),
                                   index=pd.MultiIndex.from_frame(records[PAIR]))
        self._score_wide: pd.DataFrame | None = None

    # ------------------------------------------------------------------------- construction
    @classmethod
    def from_frames(cls, models: pd.DataFrame | None, datasets: pd.DataFrame | None,
                    records: pd.DataFrame, scores: pd.DataFrame | None = None) -> Zoo:
        """Validate in-memory frames and build a Zoo.

        `models`/`datasets` may carry the id as a column (`model`/`dataset`) or as the index;
        None builds metadata-free tables from the ids in `records`.

        Raises:
            ValueError: duplicate ids, unknown ids in records/scores, duplicate pairs,
                non-finite or out-of-range accuracies, non-finite scores.
        """
        records = records.reset_index(drop=True)
        if missing := sorted(set(PAIR + ["accuracy"]) - set(records.columns)):
            raise ValueError(f"records: missing column(s) {missing}; found {list(records.columns)}")
        records = records.assign(model=records["model"].astype(str),
                                 dataset=records["dataset"].astype(str),
                                 accuracy=pd.to_numeric(records["accuracy"], errors="coerce"))
        models = _id_frame(models, "model", records["model"])
        datasets = _id_frame(datasets, "dataset", records["dataset"])
        acc = records["accuracy"].to_numpy(dtype=np.float64)
        if (bad := ~np.isfinite(acc) | (acc < 0) | (acc > 1)).any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"records, row {i}: accuracy must be a number in [0, 1], got "
                             f"{records['accuracy'].iloc[i]!r} ({int(bad.sum())} bad row(s))")
        _check_pairs(records, models.index, datasets.index, "records")
        if scores is not None and len(scores):
            scores = scores.reset_index(drop=True)
            if missing := sorted({"model", "dataset", "metric", "value"} - set(scores.columns)):
                raise ValueError(f"scores: missing column(s) {missing}; found "
                                 f"{list(scores.columns)}")
            scores = scores.assign(model=scores["model"].astype(str),
                                   dataset=scores["dataset"].astype(str),
                                   metric=scores["metric"].astype(str),
                                   value=pd.to_numeric(scores["value"], errors="coerce"))
            if (bad := ~np.isfinite(scores["value"].to_numpy(dtype=np.float64))).any():
                i = int(np.flatnonzero(bad)[0])
                raise ValueError(f"scores, row {i}: value must be a finite number, got "
                                 f"{scores['value'].iloc[i]!r} ({int(bad.sum())} bad row(s))")
            _check_pairs(scores, models.index, datasets.index, "scores", extra=["metric"])
        return cls(models, datasets, records[PAIR + ["accuracy"]], scores)

    @classmethod
    def from_records(cls, records: pd.DataFrame | str) -> Zoo:
        """A metadata-free zoo from long records (a frame or a CSV path)."""
        if not isinstance(records, pd.DataFrame):
            records = pd.read_csv(records)
        return cls.from_frames(None, None, records)

    # ------------------------------------------------------------------------------ lookups
    @property
    def model_ids(self) -> pd.Index:
        return self.models.index

    @property
    def dataset_ids(self) -> pd.Index:
        return self.datasets.index

    @property
    def num_models(self) -> int:
        return len(self.models)

    @property
    def num_datasets(self) -> int:
        return len(self.datasets)

    @property
    def score_metrics(self) -> list[str]:
        """Metric names in the scores table, sorted."""
        return sorted(self.scores["metric"].unique().tolist())

    def known_pairs(self) -> pd.DataFrame:
        """Every pair with a record, columns `model, dataset`, in records order."""
        return self.records[PAIR].copy()

    def all_pairs(self) -> pd.DataFrame:
        """The full model × dataset grid, columns `model, dataset` (models outer)."""
        grid = pd.MultiIndex.from_product([self.model_ids, self.dataset_ids], names=PAIR)
        return grid.to_frame(index=False)

    def accuracy(self, pairs: pd.DataFrame) -> np.ndarray:
        """Recorded accuracies of `pairs` [P]; ValueError naming the first pair without one."""
        idx = self._accuracy.index.get_indexer(pd.MultiIndex.from_frame(pairs[PAIR]))
        if (missing := idx < 0).any():
            i = int(np.flatnonzero(missing)[0])
            raise ValueError(f"Zoo.accuracy: pair {pairs[PAIR].iloc[i].tolist()} has no record "
                             f"({int(missing.sum())} of {len(pairs)} pairs lack one)")
        return self._accuracy.to_numpy()[idx]

    def score_matrix(self, pairs: pd.DataFrame,
                     metrics: Sequence[str] | None = None) -> np.ndarray:
        """Scores of `pairs` as [P, S] float64 (S = len(metrics)), NaN where a pair lacks one.

        Args:
            metrics: metric names (default: `score_metrics`); an unknown name raises.
        """
        metrics = self.score_metrics if metrics is None else list(metrics)
        if unknown := sorted(set(metrics) - set(self.score_metrics)):
            raise ValueError(f"Zoo.score_matrix: unknown metric(s) {unknown}; the scores table "
                             f"has {self.score_metrics}")
        if not metrics:
            return np.zeros((len(pairs), 0))
        wide = self.score_table()
        idx = wide.index.get_indexer(pd.MultiIndex.from_frame(pairs[PAIR]))
        values = wide[metrics].to_numpy(dtype=np.float64)
        out = np.full((len(pairs), len(metrics)), np.nan)           # [P, S]
        out[idx >= 0] = values[idx[idx >= 0]]
        return out

    def score_table(self) -> pd.DataFrame:
        """Scores wide: index (model, dataset), one column per metric, NaN where missing."""
        if self._score_wide is None:
            self._score_wide = self.scores.pivot(index=PAIR, columns="metric", values="value")
        return self._score_wide

    def records_matrix(self) -> pd.DataFrame:
        """Accuracies as a models × datasets frame (every id, NaN where unknown)."""
        wide = self.records.pivot(index="model", columns="dataset", values="accuracy")
        return wide.reindex(index=self.model_ids, columns=self.dataset_ids)

    def __repr__(self) -> str:
        return (f"Zoo(num_models={self.num_models}, num_datasets={self.num_datasets}, "
                f"num_records={len(self.records)}, score_metrics={self.score_metrics})")


def _id_frame(frame: pd.DataFrame | None, id_col: str, used: pd.Series) -> pd.DataFrame:
    """Metadata indexed by str id; ids taken from `used` when no metadata is given."""
    if frame is None:
        return pd.DataFrame(index=pd.Index(pd.unique(used), name=id_col, dtype=str))
    if id_col in frame.columns:
        frame = frame.set_index(id_col)
    frame = frame.copy()
    frame.index = frame.index.astype(str).rename(id_col)
    if (dup := frame.index.duplicated()).any():
        raise ValueError(f"{id_col}s: id {frame.index[dup][0]!r} appears more than once")
    return frame


def _check_pairs(df: pd.DataFrame, model_ids: pd.Index, dataset_ids: pd.Index, what: str,
                 extra: Sequence[str] = ()) -> None:
    check_known_ids(df, {"model": model_ids, "dataset": dataset_ids}, what,
                    lines=np.arange(len(df)), line_word="row")
    key = PAIR + list(extra)
    if (dup := df.duplicated(key)).any():
        i = int(np.flatnonzero(dup)[0])
        raise ValueError(f"{what}, row {i}: duplicate {'/'.join(key)} "
                         f"{df[key].iloc[i].tolist()}")
