"""Use a trained run: predict new models and datasets, recommend the top-K models with uncertainty.

    import tpred
    run = tpred.load("runs/default")                       # the run folder of `tpred.train`
    run.predict(datasets="new_datasets.csv", scores="new_scores.csv")
    #   -> model, dataset, predicted, std: every new dataset x every model
    run.recommend("my_dataset", k=5, datasets="new_datasets.csv", scores="new_scores.csv")
    #   -> rank, model, predicted, std, known: the 5 best models for it

New nodes (`models`, `datasets`: metadata; `scores`: long `model,dataset,metric,value`;
`records`: long `model,dataset,accuracy` of pairs already fine-tuned, or a wide file) may each be
a DataFrame or a CSV path. They are checked, added to a copy of the run's zoo (old tables plus
the new rows, `Zoo.from_frames`), and predicted *inductively*: the fitted predictors are not
refitted; new nodes go through the fitted featurizers, and (gnn) their score edges and records
become edges of the graph.

Input rules (each error is a ValueError naming the file — or `<what> DataFrame` — the CSV line,
the column and the value; a DataFrame row r is line r + 2, as in the CSV it would write):

- a new id equal to an id of the run's zoo (a training node): error;
- a metadata column the run's featurizer needs is missing, or holds a bad value: error naming
  the file and the columns (`tpred.data.check_columns`);
- a blank cell (empty, `NA`, `null`, ...) of a feature column: imputed by the run's fitted
  featurizers as in training (a number: the median of the run's training nodes plus its
  missing indicator; a category: `missing`, all-zero one-hot where the training nodes had no
  blank in that column, with a second warning saying so; a text: the empty text), with a
  warning counting the cells per column; an error if the run was trained with `impute: error`;
- a metadata column the run's table does not have: ignored, with a warning;
- a category unseen in training (e.g. a new `domain`): its one-hot block is all zeros, as the
  fitted `OneHotEncoder(handle_unknown="ignore")` makes it — a warning says so;
- scores or records naming an id that is neither in the run nor new: error; a duplicate of a
  score or record the run already has: error; several new records of one pair: combined as
  the run's `data.duplicates` says (an error by default);
- scores of a metric the run's zoo does not have (it was not trained with it): ignored, with a
  warning (the fitted predictors have no input for it);
- a new model or dataset without any score (the run has scores): predicted from its metadata
  and records alone (lr, knn and the gnn see its scores as missing, as in training where a pair
  lacks a score), with a `NoScoresWarning`; `score:<m>` predicts NaN for a pair without `m`;
- a new model or dataset scored on only some of its pairs or metrics: the same for the pairs
  without a score, with a `PartialScoresWarning` that names each such node and how many of its
  pairs × metrics have scores (`recommend` silences it by its category: scoring only a
  shortlist is its design). Both subclass `tpred.errors.MissingScoresWarning` (a
  `UserWarning`).

Default pairs: each new dataset × every model (old and new) and each new model × every dataset,
except pairs with a record (their accuracy is known). Standard deviations are those of the seed
ensemble (`tpred.checkpoint`) calibrated by the run's calibration (which also widens it where the
levels of the pair's dataset's most similar training datasets disagree); NaN for a method with
a single member (additive, lr, mf, knn, score).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tpred.checkpoint import (
    CHECKPOINT_NAME,
    Calibration,
    ensemble_predict,
    knn_level_spreads,
    load_checkpoint,
    save_checkpoint,
)
from tpred.config import NodeFeatureConfig, TrainConfig
from tpred.data.ids import check_known_ids
from tpred.data.tables import (
    RECORD_COLUMNS,
    SCORE_COLUMNS,
    auto_type,
    blank_cells,
    check_columns,
    check_duplicates,
    describe_blanks,
    is_long,
    is_missing,
    parse_long_records,
    parse_records,
    parse_scores,
    read_csv_rows,
    read_metadata,
    require_columns,
)
from tpred.data.zoo import PAIR, Zoo
from tpred.errors import NoScoresWarning, PartialScoresWarning
from tpred.features import MISSING_CATEGORY

__all__ = ["Extension", "Run", "load", "rank_models"]

#: a table given as a frame or as a CSV file
Source = pd.DataFrame | str | Path | None
PREDICTION_COLUMNS = ["model", "dataset", "predicted", "std"]
RANKING_COLUMNS = ["dataset", "rank", "model", "predicted", "std", "known"]


def load(path: str | Path, *, trust: bool = False, progress: bool = False) -> Run:
    """Load a run folder (or its `checkpoint/` folder) written by `python -m tpred.train`.

    Reading a checkpoint folder runs no code from its files (`tpred.checkpoint`). An old
    checkpoint (`checkpoint.pkl`, a pickle) runs whatever code it holds when unpickled, so it
    is loaded only with `trust=True`, for a file you made or trust.

    Args:
        path: the run folder, its `checkpoint/` folder, or an old `checkpoint.pkl`.
        trust: allow unpickling an old pickle checkpoint.
        progress: a progress bar while the fitted methods are re-derived.

    Raises:
        UntrustedFileError: (a ValueError) a pickle checkpoint without `trust=True`.
        ValueError: no checkpoint there, or not a tpred checkpoint.
    """
    payload = load_checkpoint(Path(path), trust=trust, progress=progress)
    folder = payload["path"].parent
    info = {k: payload.get(k) for k in ("path", "tpred_version", "created_utc", "config_sha256",
                                        "data_sha256")}
    return Run(payload["config"], payload["zoo"], payload["ensembles"],
               payload.get("calibration", {}), path=folder, info=info)


@dataclass(frozen=True, eq=False)
class Extension:
    """The run's zoo with new nodes added (`Run.extend`).

    Attributes:
        zoo: old tables plus the new rows.
        new_models, new_datasets: ids added, in input order.
        new_records: records added (`model, dataset, accuracy`).
        new_scores: scores added (`model, dataset, metric, value`).
    """

    zoo: Zoo
    new_models: tuple[str, ...] = ()
    new_datasets: tuple[str, ...] = ()
    new_records: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=list(RECORD_COLUMNS)))
    new_scores: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=list(SCORE_COLUMNS)))

    @property
    def is_empty(self) -> bool:
        return not (self.new_models or self.new_datasets or len(self.new_records)
                    or len(self.new_scores))

    def default_pairs(self) -> pd.DataFrame:
        """New datasets × every model, new models × every dataset; pairs with a record left out.

        Returns:
            Columns `model, dataset`: first every model for each new dataset (datasets in input
            order, models in table order), then each new model on every old dataset.
        """
        zoo = self.zoo
        parts = [pd.DataFrame({"model": np.tile(zoo.model_ids.to_numpy(dtype=object),
                                                len(self.new_datasets)),
                               "dataset": np.repeat(np.asarray(self.new_datasets, dtype=object),
                                                    zoo.num_models)})]
        old_datasets = zoo.dataset_ids[~zoo.dataset_ids.isin(self.new_datasets)]
        parts.append(pd.DataFrame({
            "model": np.repeat(np.asarray(self.new_models, dtype=object), len(old_datasets)),
            "dataset": np.tile(old_datasets.to_numpy(dtype=object), len(self.new_models))}))
        pairs = pd.concat(parts, ignore_index=True).astype(str)
        known = pd.MultiIndex.from_frame(zoo.records[PAIR])
        return pairs[~pd.MultiIndex.from_frame(pairs).isin(known)].reset_index(drop=True)


class Run:
    """A trained run: its config, its zoo, and every method's fitted seed ensemble.

    Args:
        config: the run's configuration.
        zoo: the zoo the predictors were fitted on (all its records are training records).
        ensembles: method -> fitted predictors (one per seed for seeded methods).
        calibration: method -> std calibration (`tpred.checkpoint.Calibration`).
        path: the run folder, if loaded from one.
        info: what the checkpoint records of itself (`path`, `tpred_version`, `created_utc`,
            `config_sha256`, `data_sha256`; see `describe`).
    """

    def __init__(self, config: TrainConfig, zoo: Zoo, ensembles: Mapping[str, list],
                 calibration: Mapping[str, Calibration] | None = None,
                 path: Path | None = None, info: Mapping[str, Any] | None = None) -> None:
        self.config = config
        self.zoo = zoo
        self.ensembles = dict(ensembles)
        self.calibration = dict(calibration or {})
        self.path = path
        self.info = dict(info or {})

    def describe(self) -> str:
        """One line saying what was loaded: the checkpoint, when and by which tpred it was
        written, its methods, seeds, zoo size, and the hashes of its config and data."""
        info = self.info

        def short(key: str) -> str:
            return (info.get(key) or "unrecorded")[:12]

        created = info.get("created_utc") or "at an unrecorded time"
        return (f"loaded {info.get('path', self.path)} (written {created} by tpred "
                f"{info.get('tpred_version', '?')}): run "
                f"{self.config.name!r}, methods {self.methods}, seeds {list(self.config.seeds)}, "
                f"{self.zoo.num_models} models x {self.zoo.num_datasets} datasets, "
                f"{len(self.zoo.records)} records; config sha256 {short('config_sha256')}, "
                f"data sha256 {short('data_sha256')}")

    def __repr__(self) -> str:
        return (f"Run(path={str(self.path)!r}, methods={self.methods}, seeds="
                f"{list(self.config.seeds)}, zoo={self.zoo!r})")

    def save(self, path: str | Path) -> Path:
        """Write the run's checkpoint (the safe folder format of `tpred.checkpoint`).

        Args:
            path: a run folder (the checkpoint goes to `<path>/checkpoint/`).

        Returns:
            The checkpoint folder.
        """
        return save_checkpoint(Path(path) / CHECKPOINT_NAME, self.config, self.zoo,
                               self.ensembles, self.calibration)

    @property
    def methods(self) -> list[str]:
        """Methods with fitted predictors."""
        return list(self.ensembles)

    def resolve_method(self, method: str | None) -> str:
        """`method`, or `gnn` (else the first method) when None.

        Raises:
            ValueError: the run has no such method (the message lists those it has).
        """
        if method is None:
            return "gnn" if "gnn" in self.ensembles else self.methods[0]
        if method not in self.ensembles:
            raise ValueError(f"the run has no method {method!r}; it has {self.methods}")
        return method

    # ---------------------------------------------------------------------------- new nodes
    def extend(self, models: Source = None, datasets: Source = None, scores: Source = None,
               records: Source = None) -> Extension:
        """Check new nodes, scores and records and add them to a copy of the run's zoo.

        See the module docstring for the rules.

        Raises:
            ValueError: naming file (or DataFrame), line, column and value; see the rules.
            TypeError: a source that is neither a DataFrame, a path nor None.
        """
        zoo, cfg = self.zoo, self.config
        new_models = _metadata(models, "model", zoo.models, cfg.model_features, zoo)
        new_datasets = _metadata(datasets, "dataset", zoo.datasets, cfg.dataset_features, zoo)
        model_table = pd.concat([zoo.models, new_models]) if len(new_models) else zoo.models
        dataset_table = (pd.concat([zoo.datasets, new_datasets]) if len(new_datasets)
                         else zoo.datasets)
        model_ids, dataset_ids = model_table.index, dataset_table.index
        new_scores = _scores(scores, model_ids, dataset_ids, zoo)
        new_records = _records(records, model_ids, dataset_ids, zoo, percent=cfg.data.percent,
                               duplicates=cfg.data.duplicates)
        all_records = pd.concat([zoo.records, new_records], ignore_index=True)
        all_scores = pd.concat([zoo.scores, new_scores], ignore_index=True)
        new_zoo = Zoo.from_frames(model_table, dataset_table, all_records, all_scores)
        _warn_score_gaps(new_models.index, new_datasets.index, new_scores, zoo.score_metrics,
                         model_ids, dataset_ids)
        return Extension(new_zoo, tuple(new_models.index), tuple(new_datasets.index),
                         new_records, new_scores)

    # ------------------------------------------------------------------------------ predict
    def predict(self, models: Source = None, datasets: Source = None, scores: Source = None,
                records: Source = None, pairs: Source = None, method: str | None = None, *,
                calibrated: bool = True) -> pd.DataFrame:
        """Predicted accuracy and its std for new pairs.

        Args:
            models, datasets, scores, records: new nodes and edges (module docstring).
            pairs: pairs to predict (`model, dataset`; a frame or CSV); default: the new
                datasets × every model and the new models × every dataset, without known pairs.
            method: a method of the run (default `gnn`).
            calibrated: pass the std through the run's calibration (`Calibration.apply`).

        Returns:
            Columns `model, dataset, predicted, std`, one row per pair.

        Raises:
            ValueError: bad input (see `extend`), a pair naming an unknown id, nothing to
                predict, or an unknown method.
        """
        method = self.resolve_method(method)
        ext = self.extend(models, datasets, scores, records)
        return self.predict_extension(ext, self.resolve_pairs(ext, pairs), method,
                                      calibrated=calibrated)

    def recommend(self, dataset: str | pd.Series | Mapping | pd.DataFrame, k: int = 5, *,
                  models: Source = None, datasets: Source = None, scores: Source = None,
                  records: Source = None, method: str | None = None,
                  calibrated: bool = True) -> pd.DataFrame:
        """The top-K models for one dataset, with predicted accuracy ± std.

        Args:
            dataset: a dataset id (of the run, or of `datasets`), or the metadata row of a new
                dataset (a Series / mapping / one-row frame with a `dataset` id, or a Series
                whose name is the id).
            k: how many models (k <= 0: all).
            models, datasets, scores, records: new nodes and edges, as for `predict`.

        Returns:
            Columns `rank, model, predicted, std, known`: models without a record predicted,
            models with one (`known` True) at their recorded accuracy with std 0, best first.
        """
        method = self.resolve_method(method)
        if not isinstance(dataset, str):
            row = _row_frame(dataset)
            datasets = row if datasets is None else pd.concat(
                [_as_frame(datasets, "dataset"), row], ignore_index=True)
            dataset = str(row["dataset"].iloc[0])
        ext = self.extend(models, datasets, scores, records)
        if dataset not in ext.zoo.dataset_ids:
            raise ValueError(f"recommend: dataset {dataset!r} is neither a dataset of the run nor "
                             f"a new one; pass its metadata (datasets=...) or a metadata row")
        known = ext.zoo.records.loc[ext.zoo.records["dataset"] == dataset, "model"]
        rest = ext.zoo.model_ids[~ext.zoo.model_ids.isin(known)]
        pairs = pd.DataFrame({"model": rest.to_numpy(dtype=object),
                              "dataset": dataset}).astype(str)
        predictions = self.predict_extension(ext, pairs, method, calibrated=calibrated)
        ranking = rank_models(predictions, ext.zoo, k, datasets=[dataset])
        return ranking.drop(columns="dataset").reset_index(drop=True)

    def resolve_pairs(self, ext: Extension, pairs: Source = None) -> pd.DataFrame:
        """`pairs` checked against `ext.zoo`, or `ext.default_pairs()` when None."""
        if pairs is None:
            out = ext.default_pairs()
            if not len(out):
                raise ValueError("nothing to predict: give new models or datasets (whose pairs "
                                 "are not all recorded), or pairs=...")
            return out
        frame, lines, where = _long_table(pairs, "pairs")
        require_columns(frame, PAIR, where, "pairs (model,dataset)")
        frame = frame[PAIR]
        _check_known_ids(frame, where, lines, ext.zoo.model_ids, ext.zoo.dataset_ids)
        check_duplicates(frame, PAIR, where, lines)
        return frame.reset_index(drop=True)

    def predict_extension(self, ext: Extension, pairs: pd.DataFrame, method: str | None = None,
                          *, calibrated: bool = True) -> pd.DataFrame:
        """Predictions (`model, dataset, predicted, std`) of `pairs` in an extended zoo."""
        method = self.resolve_method(method)
        zoo = None if ext.is_empty else ext.zoo
        mean, std = ensemble_predict(self.ensembles[method], pairs, zoo)
        if calibrated and (calibration := self.calibration.get(method)) is not None:
            level = (knn_level_spreads(self._level_knn(), pairs, zoo)
                     if calibration.level_weight > 0 else None)
            std = calibration.apply(std, level)
        return pd.DataFrame({"model": pairs["model"].to_numpy(dtype=object),
                             "dataset": pairs["dataset"].to_numpy(dtype=object),
                             "predicted": mean, "std": std}).astype({"model": str,
                                                                     "dataset": str})

    def _level_knn(self):
        """knn fitted on every record of the run's zoo, for the calibration's level spreads
        (`tpred.checkpoint.level_spreads`): the run's own knn member when it has one (the same
        deterministic fit), else fitted once here and kept."""
        if "knn" in self.ensembles:
            return self.ensembles["knn"][0]
        if not hasattr(self, "_knn_for_level"):
            from tpred.models import make_predictor

            self._knn_for_level = make_predictor("knn", self.config, 0).fit(
                self.zoo, self.zoo.known_pairs())
        return self._knn_for_level

    def level_moves(self, ext: Extension, method: str | None = None) -> pd.Series:
        """How the gnn's `level_after` moved each dataset of `ext` without records (the shift
        added to its predictions; NaN: not moved, a configured metadata cell is blank), from
        the first member (`GNNPredictor.level_moves`; every member gives the same shifts).
        Empty for a method without the move.

        Shapes: -> [datasets without records], indexed by dataset id.
        """
        from tpred.models.gnn.predictor import no_level_moves

        predictor = self.ensembles[self.resolve_method(method)][0]
        if not hasattr(predictor, "level_moves"):
            return no_level_moves()
        return predictor.level_moves(None if ext.is_empty else ext.zoo)

    # --------------------------------------------------------------------------- embeddings
    def embeddings(self, method: str = "gnn", member: int = 0, *, models: Source = None,
                   datasets: Source = None, scores: Source = None,
                   records: Source = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Node embeddings of the gnn of seed number `member`, with every record as an edge.

        Returns:
            (models [M, Z], datasets [D, Z]) frames indexed by id: the encoder's output (the
            skip-concatenation of every layer) that the decoder reads.

        Raises:
            ValueError: `method` is not a gnn of this run.
        """
        method = self.resolve_method(method)
        predictor = self.ensembles[method][member]
        ext = self.extend(models, datasets, scores, records)
        return gnn_embeddings(predictor, None if ext.is_empty else ext.zoo)


def gnn_embeddings(predictor: Any, zoo: Zoo | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Embeddings of every model and dataset of `zoo` (default: the fitted one) by a gnn.

    Calls `GNNPredictor.embed(zoo)`; every record of a given zoo is a message edge.

    Shapes: -> models [M, Z], datasets [D, Z] (Z = hidden_channels · (num_layers + 1)).
    """
    if not hasattr(predictor, "embed"):
        raise ValueError(f"gnn_embeddings: {type(predictor).__name__} has no node embeddings "
                         "(only the gnn does)")
    return predictor.embed(zoo)


# -------------------------------------------------------------------------------- ranking
def rank_models(predictions: pd.DataFrame, zoo: Zoo, k: int = 5,
                datasets: list[str] | None = None) -> pd.DataFrame:
    """Per dataset, models ranked by accuracy: predicted pairs and recorded ones together.

    Args:
        predictions: `model, dataset, predicted, std`.
        zoo: supplies the records (a recorded pair enters at its accuracy, std 0, known True;
            a pair both predicted and recorded keeps its prediction).
        k: keep the best k per dataset (k <= 0: all).
        datasets: which datasets (default: those of `predictions`, in order of appearance).

    Returns:
        Columns `dataset, rank, model, predicted, std, known`; rank 1 is the best; ties keep
        model table order.
    """
    datasets = list(pd.unique(predictions["dataset"])) if datasets is None else datasets
    pred = predictions[PREDICTION_COLUMNS].assign(known=False)
    rec = zoo.records[zoo.records["dataset"].isin(datasets)]
    rec = rec.rename(columns={"accuracy": "predicted"}).assign(std=0.0, known=True)
    rec = rec[~pd.MultiIndex.from_frame(rec[PAIR]).isin(pd.MultiIndex.from_frame(pred[PAIR]))]
    both = pd.concat([pred[pred["dataset"].isin(datasets)], rec[pred.columns]],
                     ignore_index=True)
    both["_order"] = zoo.model_ids.get_indexer(both["model"])
    both["_dataset"] = pd.Index(datasets).get_indexer(both["dataset"])
    both = both.sort_values(["_dataset", "predicted", "_order"], ascending=[True, False, True],
                            kind="stable")
    both["rank"] = both.groupby("_dataset").cumcount() + 1
    if k > 0:
        both = both[both["rank"] <= k]
    return both[RANKING_COLUMNS].reset_index(drop=True)


def format_rankings(ranking: pd.DataFrame, *, new_datasets: tuple[str, ...] = (),
                    limit: int = 20) -> str:
    """The rankings as text tables, one block per dataset (at most `limit` blocks)."""
    blocks = []
    names = list(pd.unique(ranking["dataset"]))
    for name in names[:limit]:
        part = ranking[ranking["dataset"] == name]
        cells = pd.DataFrame({
            "rank": part["rank"].to_numpy(),
            "model": part["model"].to_numpy(),
            "accuracy": [_pm(p, s, known) for p, s, known in
                         zip(part["predicted"], part["std"], part["known"], strict=True)]})
        tag = " (new)" if name in new_datasets else ""
        notes = "".join(f"\n{line}" for line in tie_notes(part))
        blocks.append(f"== {name}{tag} ==\n" + cells.to_string(index=False) + notes)
    if len(names) > limit:
        blocks.append(f"... and {len(names) - limit} more dataset(s)")
    return "\n\n".join(blocks)


def tie_notes(part: pd.DataFrame) -> list[str]:
    """One line per group of predicted (not recorded) models of one dataset's ranking `part`
    (`rank_models` rows) whose predictions are exactly equal, e.g. `ranks 1-3 tie at 0.975
    (...)`. The gnn's exact ties come from the clip of its members' outputs to [0, 1] (every
    member puts the models at or beyond 1); their order is the model table's, not a
    prediction, which is said so that a user does not read rank 1 as the predicted best of
    them. Ties only among the rows shown: a tie across the top-k cut shows as one row."""
    predicted = part[~part["known"].to_numpy(dtype=bool)]
    lines = []
    for value, group in predicted.groupby("predicted", sort=False):
        if len(group) > 1:
            ranks = group["rank"].to_numpy()
            lines.append(f"ranks {ranks.min()}-{ranks.max()} tie at {value:.3f} (exactly equal "
                         f"predictions, e.g. every member at the clip to 1): their order is "
                         f"the model table's, not a prediction")
    return lines


def _pm(predicted: float, std: float, known: bool) -> str:
    if known:
        return f"{predicted:.3f} (recorded)"
    if np.isnan(std):
        return f"{predicted:.3f}"
    return f"{predicted:.3f} ± {std:.3f}"


# ------------------------------------------------------------------------ input checking
def _as_frame(source: Source, what: str) -> pd.DataFrame:
    """A frame source as is, a CSV path read as text (for combining with a row)."""
    if isinstance(source, pd.DataFrame):
        return source.reset_index() if what in (source.index.names or []) else source
    return pd.read_csv(source, dtype=str, keep_default_na=False)


def _row_frame(row: pd.Series | Mapping | pd.DataFrame) -> pd.DataFrame:
    """The metadata of one new dataset as a one-row frame with a `dataset` column."""
    if isinstance(row, pd.DataFrame):
        frame = row.reset_index() if "dataset" in (row.index.names or []) else row
        if len(frame) != 1:
            raise ValueError(f"recommend: a dataset row frame must have exactly 1 row, got "
                             f"{len(frame)}")
    elif isinstance(row, pd.Series):
        values = row.to_dict()
        if "dataset" not in values and row.name is not None:
            values["dataset"] = row.name
        frame = pd.DataFrame([values])
    elif isinstance(row, Mapping):
        frame = pd.DataFrame([dict(row)])
    else:
        raise TypeError(f"recommend: dataset must be an id (str), a Series, a mapping or a "
                        f"one-row DataFrame, got {type(row).__name__}")
    if "dataset" not in frame.columns:
        raise ValueError(f"recommend: the dataset row has no 'dataset' id; its fields are "
                         f"{list(frame.columns)}")
    return frame


def _long_table(source: Source, what: str) -> tuple[pd.DataFrame, np.ndarray, str]:
    """(frame of str values, CSV line of each row, name for messages) of a frame or CSV path."""
    if isinstance(source, (str, Path)):
        frame, lines = read_csv_rows(source)
        return frame, lines, str(source)
    if isinstance(source, pd.DataFrame):
        where = f"{what} DataFrame"
        if not len(source):
            raise ValueError(f"{where}: no rows")
        frame = source.reset_index(drop=True)
        frame = pd.DataFrame({str(c): frame[c].astype(str).to_numpy(dtype=object)
                              for c in frame.columns})
        return frame, np.arange(len(frame)) + 2, where
    raise TypeError(f"{what} must be a pandas DataFrame, a CSV path or None, got "
                    f"{type(source).__name__}")


def _metadata(source: Source, id_col: str, old: pd.DataFrame, features: NodeFeatureConfig,
              zoo: Zoo) -> pd.DataFrame:
    """New metadata rows, checked against the run's table; indexed by id like `old`."""
    if source is None:
        return old.iloc[:0]
    if isinstance(source, (str, Path)):
        frame, lines = read_metadata(source, id_col)
        where = str(source)
    else:
        raw, lines, where = _long_table(source, f"{id_col}s")
        if id_col not in raw.columns and isinstance(source, pd.DataFrame) \
                and source.index.name == id_col:
            raw = _long_table(source.reset_index(), f"{id_col}s")[0]
        require_columns(raw, [id_col], where, f"{id_col} metadata (the {id_col} id column)")
        ids = raw[id_col]
        if (empty := (ids.str.strip() == "").to_numpy()).any():
            i = int(np.flatnonzero(empty)[0])
            raise ValueError(f"{where}, line {lines[i]}, column {id_col!r}: empty id "
                             f"{ids.iloc[i]!r}")
        check_duplicates(raw, [id_col], where, lines)
        frame = pd.DataFrame({c: auto_type(raw[c]).to_numpy() for c in raw.columns
                              if c != id_col},
                             index=pd.Index(ids.to_numpy(dtype=object), name=id_col, dtype=str))
    if (taken := frame.index.isin(old.index)).any():
        i = int(np.flatnonzero(taken)[0])
        raise ValueError(f"{where}, line {lines[i]}, column {id_col!r}: id {frame.index[i]!r} "
                         f"is already a {id_col} of the run's zoo (a training node; "
                         f"{int(taken.sum())} such row(s)); new {id_col}s need new ids")
    key = f"{id_col}_features"
    check_columns(frame, features, where, lines=lines, key=key,
                  hint=f"the run was trained with {key}.impute: error, so new {id_col}s must be "
                       f"complete")
    if extra := [c for c in frame.columns if c not in old.columns]:
        warnings.warn(f"{where}: column(s) {extra} are not in the run's {id_col}s table; "
                      f"ignored", UserWarning, stacklevel=4)
        frame = frame.drop(columns=extra)
    if line := describe_blanks(blank_cells(frame, features), features, where,
                               f"the run's training {id_col}s"):
        warnings.warn(line, UserWarning, stacklevel=4)
    trained = old.loc[old.index.isin(zoo.records[id_col])]
    for col in features.categorical:
        seen = set(_categories(trained[col]))
        unseen = [v for v in dict.fromkeys(_categories(frame[col])) if v not in seen]
        # a blank cell is the 'missing' category; said apart, so that it does not read as a
        # category named 'missing' after the blank-cells line above
        if MISSING_CATEGORY in unseen and is_missing(frame[col]).any():
            unseen.remove(MISSING_CATEGORY)
            warnings.warn(f"{where}, column {col!r}: blank cell(s), and the training "
                          f"{id_col}s have none, so the 'missing' category has no one-hot "
                          f"column; their one-hot features are zeros (as for an unseen "
                          f"category)", UserWarning, stacklevel=4)
        if unseen:
            warnings.warn(f"{where}, column {col!r}: categor{'y' if len(unseen) == 1 else 'ies'} "
                          f"{unseen} unseen in training; their one-hot features are zeros",
                          UserWarning, stacklevel=4)
    return frame


def _categories(column: pd.Series) -> list[str]:
    """Categories as the featurizer sees them: text, a blank cell as `missing`."""
    return column.astype(str).where(~is_missing(column), MISSING_CATEGORY).tolist()


def _check_known_ids(df: pd.DataFrame, where: str, lines: np.ndarray, model_ids: pd.Index,
                     dataset_ids: pd.Index) -> None:
    check_known_ids(df, {"model": model_ids, "dataset": dataset_ids}, where, lines=lines,
                    problem="is neither a {kind} of the run nor a new one")


def _check_not_in(df: pd.DataFrame, key: list[str], old: pd.DataFrame, where: str,
                  lines: np.ndarray | None, what: str) -> None:
    """Error for the first row whose `key` the run's table `old` already has."""
    clash = pd.MultiIndex.from_frame(df[key]).isin(pd.MultiIndex.from_frame(old[key]))
    if clash.any():
        i = int(np.flatnonzero(clash)[0])
        at = f", line {lines[i]}" if lines is not None else ""
        raise ValueError(f"{where}{at}, columns {key}: {df[key].iloc[i].tolist()} already has "
                         f"a {what} in the run's zoo ({int(clash.sum())} such row(s)); give only "
                         f"new ones")


def _scores(source: Source, model_ids: pd.Index, dataset_ids: pd.Index,
            zoo: Zoo) -> pd.DataFrame:
    """New scores (long), checked; metrics the run's zoo lacks dropped with a warning."""
    if source is None:
        return zoo.scores.iloc[:0]
    frame, lines, where = _long_table(source, "scores")
    require_columns(frame, list(SCORE_COLUMNS), where, "long scores (model,dataset,metric,value)")
    df = frame[list(SCORE_COLUMNS)].astype(str)
    _check_known_ids(df, where, lines, model_ids, dataset_ids)
    out = parse_scores(df, lines, where)
    _check_not_in(out, ["model", "dataset", "metric"], zoo.scores, where, lines, "score")
    known = set(zoo.score_metrics)
    if unknown := sorted(set(out["metric"]) - known):
        keep = out["metric"].isin(known).to_numpy()
        warnings.warn(f"{where}: metric(s) {unknown} were not in the run's scores "
                      f"{sorted(known)}; the fitted predictors cannot use them, so their "
                      f"{int((~keep).sum())} row(s) are ignored", UserWarning, stacklevel=4)
        out = out[keep].reset_index(drop=True)
    return out


def _first_five(items: list) -> list:
    """At most five items for a message, "..." after them when there are more."""
    return list(items[:5]) + (["..."] if len(items) > 5 else [])


def _warn_score_gaps(new_models: pd.Index, new_datasets: pd.Index, new_scores: pd.DataFrame,
                     metrics: list[str], model_ids: pd.Index, dataset_ids: pd.Index) -> None:
    """Warn about new nodes without a single score, then about those scored on only some of
    their pairs or metrics, when the run was trained with scores: their pairs without a score
    are predicted as a pair without scores is in training, which the user may not expect.

    One count of (pair, metric) scores per new node serves both (`parse_scores` has already
    rejected duplicates)."""
    if not metrics:
        return
    sides = {"model": ("dataset", new_models, dataset_ids),
             "dataset": ("model", new_datasets, model_ids)}
    have = {kind: new_scores.groupby(kind).size().reindex(ids, fill_value=0)   # [new nodes]
            for kind, (_, ids, _) in sides.items()}
    for kind in ("model", "dataset"):
        if len(unscored := have[kind].index[have[kind] == 0]):
            warnings.warn(f"{len(unscored)} new {kind}(s) {_first_five(list(unscored))} have no "
                          f"scores (the run has {metrics}): predicted from metadata and records "
                          f"only, as a pair without scores is in training; score:<metric> gives "
                          f"NaN for them", NoScoresWarning, stacklevel=4)
    for kind in ("dataset", "model"):
        other, _, others = sides[kind]
        full = len(others) * len(metrics)
        partly = have[kind][(have[kind] > 0) & (have[kind] < full)]
        if len(partly):
            shown = _first_five([f"{node} ({n} of {full})" for node, n in partly.items()])
            warnings.warn(f"{len(partly)} new {kind}(s) have scores for only some of their "
                          f"{other} × metric pairs ({len(others)} {other}s × {metrics}): "
                          f"{', '.join(shown)}; the pairs without a score are predicted as a "
                          f"pair without scores is in training", PartialScoresWarning,
                          stacklevel=4)


def _records(source: Source, model_ids: pd.Index, dataset_ids: pd.Index, zoo: Zoo, *,
             percent: bool, duplicates: str = "error") -> pd.DataFrame:
    """New known records (long, or a wide CSV file), checked against the run's records."""
    if source is None:
        return zoo.records.iloc[:0]
    frame, lines, where = _long_table(source, "records")   # a CSV file is read once
    if isinstance(source, (str, Path)) and not is_long(frame):
        out = parse_records(frame, lines, Path(source), model_ids, dataset_ids, fmt="wide",
                            percent=percent, duplicates=duplicates, hints=False)
        lines = None
    else:
        require_columns(frame, list(RECORD_COLUMNS), where,
                        "long records (model,dataset,accuracy)")
        df = frame[list(RECORD_COLUMNS)].astype(str)
        _check_known_ids(df, where, lines, model_ids, dataset_ids)
        out = parse_long_records(df, lines, where, percent=percent, duplicates=duplicates,
                                 hints=False)
    if lines is not None and len(lines) != len(out):  # repeated records were combined
        lines = None
    _check_not_in(out, PAIR, zoo.records, where, lines, "record")
    return out
