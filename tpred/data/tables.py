"""Reading a zoo's CSV files: the only code that opens user tables, and every error about them.

Files (see ../shared/docs/design.md, Data contract):

- `models.csv`: one row per model, a unique `model` column, any other columns are metadata.
- `datasets.csv`: the same with `dataset`.
- records: long `model,dataset,accuracy` (one row per pair), or wide: models as rows, the first
  column the model id (its header may be empty), one column per dataset. A wide column is a
  dataset id, or a value of the `record_column` column of datasets.csv (DomainNet-270's
  `task{t}_{domain}_{shots}` names); an empty wide cell means "no record".
- scores (optional): long `model,dataset,metric,value`; a pair may lack some or all metrics.

Every error is a `ValueError` naming the file, the CSV line (1-based, the header is line 1;
blank lines are skipped but counted), the column and the value. Nothing is dropped silently:
rows with unknown ids raise, or, with `drop_unknown=True`, are dropped with a warning giving
the count.

Metadata columns whose every value is a finite number are typed (int64 or float64); all other
columns stay strings exactly as written in the file.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from tpred.config import NodeFeatureConfig, ZooConfig
from tpred.data.ids import check_known_ids
from tpred.data.zoo import Zoo

__all__ = ["check_columns", "load_zoo", "read_datasets", "read_models", "read_records",
           "read_scores", "repo_root", "resolve_path"]

RECORD_COLUMNS = ("model", "dataset", "accuracy")
SCORE_COLUMNS = ("model", "dataset", "metric", "value")
#: the datasets.csv column that names a dataset's column in a wide records file
ALIAS_COLUMN = "record_column"


# ------------------------------------------------------------------------------------ paths
def repo_root() -> Path:
    """The repository root (parent of the `tpred` package) when run from a checkout, else cwd."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() else Path.cwd()


def resolve_path(path: str | Path, base_dir: Path | None = None) -> Path:
    """`path` itself if absolute, else `base_dir / path` (default base: `repo_root()`)."""
    path = Path(path).expanduser()
    if path.is_absolute():
        return path
    return Path(base_dir if base_dir is not None else repo_root()) / path


# ------------------------------------------------------------------------------ raw reading
def read_csv_rows(path: str | Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a CSV as strings, exactly as written; return (frame, 1-based line of each row).

    The csv module (not `pd.read_csv`) keeps the true line numbers: blank lines are skipped but
    counted, and a quoted field spanning lines reports the line where its row ends.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file (0 bytes); expected a header line and rows")
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        for row in reader:
            if not row:  # a blank line
                continue
            if header is None:
                header = row
                continue
            if len(row) != len(header):
                raise ValueError(f"{path}, line {reader.line_num}: expected {len(header)} fields "
                                 f"as in the header {header}, got {len(row)}: {row}")
            rows.append(row)
            lines.append(reader.line_num)
    if header is None:
        raise ValueError(f"{path}: empty file (only blank lines); expected a header and rows")
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise ValueError(f"{path}, line 1: column {name!r} appears more than once in the "
                             f"header {header}")
        seen.add(name)
    if not rows:
        raise ValueError(f"{path}: no rows after the header {header}")
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    return frame, np.asarray(lines, dtype=np.int64)


def require_columns(frame: pd.DataFrame, columns: Iterable[str], path: Path | str,
                    what: str) -> None:
    """ValueError naming `path` and the missing columns of `what` unless `frame` has them all."""
    if missing := [c for c in columns if c not in frame.columns]:
        raise ValueError(f"{path}: missing column(s) {missing} of {what}; found "
                         f"{list(frame.columns)}")


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def auto_type(column: pd.Series) -> pd.Series:
    """A column whose every value is a finite number becomes numeric; others stay as written."""
    num = pd.to_numeric(column, errors="coerce")
    if len(num) and num.notna().all() and np.isfinite(num.to_numpy(dtype=np.float64)).all():
        return num
    return column.astype(str)


# ---------------------------------------------------------------------------------- metadata
def read_metadata(path: str | Path, id_col: str) -> tuple[pd.DataFrame, np.ndarray]:
    """(metadata indexed by `id_col`, CSV line of each row); errors as `read_models` says."""
    path = Path(path)
    frame, lines = read_csv_rows(path)
    require_columns(frame, [id_col], path, f"{path.name} (the {id_col} id column)")
    ids = frame[id_col].astype(str)
    if (empty := (ids.str.strip() == "").to_numpy()).any():
        i = _first(empty)
        raise ValueError(f"{path}, line {lines[i]}, column {id_col!r}: empty id {ids.iloc[i]!r}")
    if (dup := ids.duplicated().to_numpy()).any():
        i = _first(dup)
        first = lines[_first((ids == ids.iloc[i]).to_numpy())]
        raise ValueError(f"{path}, line {lines[i]}, column {id_col!r}: id {ids.iloc[i]!r} "
                         f"appears more than once (first on line {first}; "
                         f"{int(dup.sum())} duplicate row(s))")
    meta = frame.drop(columns=id_col)
    meta = pd.DataFrame({c: auto_type(meta[c]).to_numpy() for c in meta.columns},
                        index=pd.Index(ids.to_numpy(dtype=object), name=id_col, dtype=str))
    return meta, lines


def read_models(path: str | Path) -> pd.DataFrame:
    """Read models.csv: a frame indexed by the `model` id (str), metadata as columns.

    Raises:
        ValueError: empty file, missing `model` column, empty or duplicate id, ragged row.
    """
    return read_metadata(path, "model")[0]


def read_datasets(path: str | Path) -> pd.DataFrame:
    """Read datasets.csv: a frame indexed by the `dataset` id (str), metadata as columns.

    Raises:
        ValueError: empty file, missing `dataset` column, empty or duplicate id, ragged row.
    """
    return read_metadata(path, "dataset")[0]


def check_columns(frame: pd.DataFrame, config: NodeFeatureConfig, path: str | Path,
                  *, lines: np.ndarray | None = None) -> None:
    """Check that metadata has every column `config` uses, with the right kind of values.

    Args:
        frame: metadata as `read_models`/`read_datasets` return it (rows in file order).
        config: the node feature config of this node type.
        path: the file the frame came from, for messages.
        lines: CSV line of each row (default: row position + 2, i.e. no blank lines).

    Raises:
        ValueError: a configured column is absent (names the columns found); a numeric column
            holds a non-number, NaN or inf; a `log` column holds a negative value; a text column
            holds an empty value, or every value of it is a number (it is not text).
    """
    path = Path(path)
    lines = np.arange(len(frame)) + 2 if lines is None else np.asarray(lines)
    if missing := [c for c in config.columns if c not in frame.columns]:
        raise ValueError(f"{path}: configured feature column(s) {missing} not found; columns "
                         f"found: {list(frame.columns)}")
    for col in config.numeric:
        raw = frame[col].astype(str)  # quote values as the file wrote them
        num = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
        if (bad := ~np.isfinite(num)).any():
            i = _first(bad)
            raise ValueError(f"{path}, line {lines[i]}, column {col!r}: a numeric feature column "
                             f"must hold finite numbers, got {raw.iloc[i]!r} "
                             f"({int(bad.sum())} bad row(s))")
        if col in config.log and (neg := num < 0).any():
            i = _first(neg)
            raise ValueError(f"{path}, line {lines[i]}, column {col!r}: a log-scaled column must "
                             f"be >= 0, got {raw.iloc[i]!r}")
    for col in config.text:
        raw = frame[col].astype(str)
        if (empty := (raw.str.strip() == "").to_numpy()).any():
            i = _first(empty)
            raise ValueError(f"{path}, line {lines[i]}, column {col!r}: a text feature column "
                             f"must not be empty, got {raw.iloc[i]!r}")
        if pd.to_numeric(raw, errors="coerce").notna().all():
            raise ValueError(f"{path}, column {col!r}: declared a text column, but every value is "
                             f"a number (line {lines[0]}: {raw.iloc[0]!r}); is it a numeric "
                             f"or categorical column?")


# ----------------------------------------------------------------------------------- records
def parse_accuracy(raw: pd.Series, path: Path, lines: np.ndarray, columns: np.ndarray | str,
                *, percent: bool) -> np.ndarray:
    """Parse accuracies: finite numbers in [0, 1] (or [0, 100] divided by 100 with percent)."""
    acc = pd.to_numeric(raw.astype(str).str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    hi = 100.0 if percent else 1.0
    if (bad := ~np.isfinite(acc) | (acc < 0) | (acc > hi)).any():
        i = _first(bad)
        col = columns if isinstance(columns, str) else columns[i]
        hint = ("" if percent or not (np.isfinite(acc[i]) and 1 < acc[i] <= 100)
                else "; percentages need percent=True (ZooConfig.percent)")
        raise ValueError(f"{path}, line {lines[i]}, column {col!r}: accuracy must be a number in "
                         f"[0, {hi:g}], got {raw.iloc[i]!r} ({int(bad.sum())} bad value(s)){hint}")
    return acc / 100.0 if percent else acc


def _check_ids(df: pd.DataFrame, path: Path, lines: np.ndarray, model_ids: pd.Index,
               dataset_ids: pd.Index, *, drop_unknown: bool) -> np.ndarray:
    """Mask of rows whose ids are known; raise for the first unknown one unless dropping."""
    return check_known_ids(df, {"model": model_ids, "dataset": dataset_ids}, str(path),
                           problem="is not in {kind}s.csv", lines=lines, drop=drop_unknown,
                           hint="; drop_unknown=True drops them with a warning", stacklevel=3)


def check_duplicates(df: pd.DataFrame, key: list[str], path: Path | str,
                     lines: np.ndarray) -> None:
    """ValueError naming the line of the first repeated `key` and of its first occurrence."""
    if (dup := df.duplicated(key).to_numpy()).any():
        i = _first(dup)
        same = (df[key] == df[key].iloc[i]).all(axis=1).to_numpy()
        raise ValueError(f"{path}, line {lines[i]}, columns {key}: duplicate "
                         f"{df[key].iloc[i].tolist()} (first on line {lines[_first(same)]}; "
                         f"{int(dup.sum())} duplicate row(s))")


def is_long(frame: pd.DataFrame) -> bool:
    """Whether a records table is long (has a `dataset` or `accuracy` column) rather than wide."""
    return bool({"dataset", "accuracy"} & set(frame.columns))


def read_records(path: str | Path, model_ids: Iterable[str], dataset_ids: Iterable[str], *,
                 fmt: str = "auto", percent: bool = False, drop_unknown: bool = False,
                 aliases: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Read fine-tuning records, long or wide, into long form.

    Args:
        path: the CSV file.
        model_ids, dataset_ids: the ids of models.csv and datasets.csv.
        fmt: `long` (`model,dataset,accuracy`), `wide` (models as rows, first column the model
            id, one column per dataset; an empty cell is no record), or `auto` (long when the
            header has a `dataset` or `accuracy` column, else wide).
        percent: accuracies are percentages in [0, 100]; they are divided by 100.
        drop_unknown: drop (with a warning giving the count) rows/columns naming unknown ids
            instead of raising.
        aliases: wide column name -> dataset id, for wide columns that are not dataset ids
            (`load_zoo` passes datasets.csv's `record_column`).

    Returns:
        Columns `model` (str), `dataset` (str), `accuracy` (float64 in [0, 1]); long: file
        order; wide: row-major (models in file order, datasets in column order).

    Raises:
        ValueError: naming file, line, column and value, for an empty file, a missing column,
            an unknown model/dataset id or wide column, a duplicate pair, a NaN/inf/empty or
            out-of-range accuracy.
    """
    path = Path(path)
    if fmt not in ("auto", "long", "wide"):
        raise ValueError(f"read_records: fmt must be 'auto', 'long' or 'wide', got {fmt!r}")
    frame, lines = read_csv_rows(path)
    return parse_records(frame, lines, path, model_ids, dataset_ids, fmt=fmt, percent=percent,
                         drop_unknown=drop_unknown, aliases=aliases)


def parse_records(frame: pd.DataFrame, lines: np.ndarray, path: Path, model_ids: Iterable[str],
                  dataset_ids: Iterable[str], *, fmt: str = "auto", percent: bool = False,
                  drop_unknown: bool = False, aliases: Mapping[str, str] | None = None
                  ) -> pd.DataFrame:
    """`read_records` on a CSV already read by `read_csv_rows` (frame of text, line per row)."""
    model_ids, dataset_ids = pd.Index(model_ids), pd.Index(dataset_ids)
    if fmt == "long" or (fmt == "auto" and is_long(frame)):
        return _read_long(frame, lines, path, model_ids, dataset_ids, percent=percent,
                          drop_unknown=drop_unknown)
    return _read_wide(frame, lines, path, model_ids, dataset_ids, percent=percent,
                      drop_unknown=drop_unknown, aliases=aliases or {})


def _read_long(frame: pd.DataFrame, lines: np.ndarray, path: Path, model_ids: pd.Index,
               dataset_ids: pd.Index, *, percent: bool, drop_unknown: bool) -> pd.DataFrame:
    require_columns(frame, RECORD_COLUMNS, path, "long records (model,dataset,accuracy)")
    df = frame[list(RECORD_COLUMNS)].astype(str)
    keep = _check_ids(df, path, lines, model_ids, dataset_ids, drop_unknown=drop_unknown)
    return parse_long_records(df[keep], lines[keep], path, percent=percent)


def parse_long_records(df: pd.DataFrame, lines: np.ndarray, where: str | Path, *,
                       percent: bool) -> pd.DataFrame:
    """Long records whose ids are checked (`model, dataset, accuracy` as text) -> typed records.

    Raises:
        ValueError: a duplicate pair, or an accuracy that is not a number in [0, 1] ([0, 100]
            with percent), naming `where`, the line and the column.
    """
    check_duplicates(df, ["model", "dataset"], where, lines)
    acc = parse_accuracy(df["accuracy"], where, lines, "accuracy", percent=percent)
    return pd.DataFrame({"model": df["model"].to_numpy(dtype=object),
                         "dataset": df["dataset"].to_numpy(dtype=object),
                         "accuracy": acc}).astype({"model": str, "dataset": str})


def _read_wide(frame: pd.DataFrame, lines: np.ndarray, path: Path, model_ids: pd.Index,
               dataset_ids: pd.Index, *, percent: bool, drop_unknown: bool,
               aliases: Mapping[str, str]) -> pd.DataFrame:
    id_header, *columns = frame.columns.tolist()
    if not columns:
        raise ValueError(f"{path}: a wide records file needs the model id column and at least one "
                         f"dataset column; found {list(frame.columns)}")
    # each column header becomes a dataset id (itself, or through datasets.csv's record_column)
    names, unknown = {}, []
    for col in columns:
        if col in dataset_ids:
            names[col] = col
        elif col in aliases and aliases[col] in dataset_ids:
            names[col] = aliases[col]
        else:
            unknown.append(col)
    if unknown and not drop_unknown:
        raise ValueError(f"{path}, line 1, column {unknown[0]!r}: not a dataset id of "
                         f"datasets.csv nor one of its {ALIAS_COLUMN!r} values ({len(unknown)} "
                         f"such column(s); drop_unknown=True drops them with a warning)")
    if unknown:
        warnings.warn(f"{path}: dropped {len(unknown)} column(s) naming no dataset of "
                      f"datasets.csv", stacklevel=3)
    columns = [c for c in columns if c in names]
    seen: dict[str, str] = {}
    for col in columns:
        if names[col] in seen:
            raise ValueError(f"{path}, line 1, column {col!r}: dataset {names[col]!r} appears "
                             f"twice (also column {seen[names[col]]!r}): duplicate pairs")
        seen[names[col]] = col
    models = frame[id_header].astype(str)
    keep = check_known_ids(pd.DataFrame({id_header: models}), {id_header: model_ids}, str(path),
                           problem="is not in models.csv", lines=lines, kinds={id_header: "model"},
                           drop=drop_unknown, stacklevel=3,
                           hint="; drop_unknown=True drops them with a warning")
    frame, lines, models = frame[keep], lines[keep], models[keep]
    check_duplicates(pd.DataFrame({"model": models}), ["model"], path, lines)
    values = frame[columns].astype(str).to_numpy()                          # [M, D] text
    rows, cols = np.nonzero(np.char.strip(values.astype(str)) != "")       # empty = no record
    raw = pd.Series(values[rows, cols])
    acc = parse_accuracy(raw, path, lines[rows], np.asarray(columns, dtype=object)[cols],
                      percent=percent)
    return pd.DataFrame({"model": models.to_numpy(dtype=object)[rows],
                         "dataset": np.asarray([names[c] for c in columns], dtype=object)[cols],
                         "accuracy": acc}).astype({"model": str, "dataset": str})


# ------------------------------------------------------------------------------------ scores
def read_scores(path: str | Path, model_ids: Iterable[str], dataset_ids: Iterable[str], *,
                drop_unknown: bool = False) -> pd.DataFrame:
    """Read long scores `model,dataset,metric,value`; a pair may lack some or all metrics.

    Returns:
        Columns `model`, `dataset`, `metric` (str) and `value` (float64, finite), file order.

    Raises:
        ValueError: naming file, line, column and value, for an empty file, a missing column,
            an unknown id, an empty metric name, a duplicate (model, dataset, metric), or a
            value that is not a finite number.
    """
    path = Path(path)
    model_ids, dataset_ids = pd.Index(model_ids), pd.Index(dataset_ids)
    frame, lines = read_csv_rows(path)
    require_columns(frame, SCORE_COLUMNS, path, "long scores (model,dataset,metric,value)")
    df = frame[list(SCORE_COLUMNS)].astype(str)
    keep = _check_ids(df, path, lines, model_ids, dataset_ids, drop_unknown=drop_unknown)
    return parse_scores(df[keep], lines[keep], path)


def parse_scores(df: pd.DataFrame, lines: np.ndarray, where: str | Path) -> pd.DataFrame:
    """Long scores whose ids are checked (`model, dataset, metric, value` as text) -> typed.

    Raises:
        ValueError: an empty metric name, a duplicate (model, dataset, metric), or a value that
            is not a finite number, naming `where`, the line and the column.
    """
    if (empty := (df["metric"].str.strip() == "").to_numpy()).any():
        i = _first(empty)
        raise ValueError(f"{where}, line {lines[i]}, column 'metric': empty metric name")
    check_duplicates(df, ["model", "dataset", "metric"], where, lines)
    value = pd.to_numeric(df["value"].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    if (bad := ~np.isfinite(value)).any():
        i = _first(bad)
        raise ValueError(f"{where}, line {lines[i]}, column 'value': a score must be a finite "
                         f"number, got {df['value'].iloc[i]!r} ({int(bad.sum())} bad row(s))")
    return pd.DataFrame({"model": df["model"].to_numpy(dtype=object),
                         "dataset": df["dataset"].to_numpy(dtype=object),
                         "metric": df["metric"].to_numpy(dtype=object),
                         "value": value}).astype({"model": str, "dataset": str, "metric": str})


# ---------------------------------------------------------------------------------- the zoo
def load_zoo(cfg: ZooConfig, base_dir: Path | None = None, *,
             model_features: NodeFeatureConfig | None = None,
             dataset_features: NodeFeatureConfig | None = None,
             drop_unknown: bool = False) -> Zoo:
    """Read and validate a zoo's tables as `cfg` names them.

    Args:
        cfg: where the tables are; a relative `cfg.root` is resolved against `base_dir`.
        base_dir: default: the repository root (the parent of the `tpred` package).
        model_features, dataset_features: when given, the metadata must hold their columns with
            the right kind of values (`check_columns`).
        drop_unknown: drop records/scores naming unknown ids, with a warning, instead of raising.

    Raises:
        ValueError: a missing folder or file, or any error of the readers and `check_columns`.
    """
    root = resolve_path(cfg.root, base_dir)
    if not root.is_dir():
        raise ValueError(f"zoo folder {root} (ZooConfig.root={cfg.root!r}) does not exist")
    models_path, datasets_path = root / cfg.models, root / cfg.datasets
    models, model_lines = read_metadata(models_path, "model")
    datasets, dataset_lines = read_metadata(datasets_path, "dataset")
    if model_features is not None:
        check_columns(models, model_features, models_path, lines=model_lines)
    if dataset_features is not None:
        check_columns(datasets, dataset_features, datasets_path, lines=dataset_lines)
    aliases = ({str(a): d for d, a in datasets[ALIAS_COLUMN].items()}
               if ALIAS_COLUMN in datasets.columns else {})
    records = read_records(root / cfg.records, models.index, datasets.index,
                           fmt=cfg.records_format, percent=cfg.percent,
                           drop_unknown=drop_unknown, aliases=aliases)
    scores = (None if cfg.scores is None else
              read_scores(root / cfg.scores, models.index, datasets.index,
                          drop_unknown=drop_unknown))
    return Zoo.from_frames(models, datasets, records, scores)
