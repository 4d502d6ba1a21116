"""Reading a zoo's CSV files: the only code that opens user tables, and every error about them.

Files (see ../shared/docs/design.md, Data contract):

- `models.csv`: one row per model, a unique `model` column, any other columns are metadata.
- `datasets.csv`: the same with `dataset`.
- records: long `model,dataset,accuracy` (one row per pair, or several with
  `data.duplicates`), or wide: models as rows, the first column the model id (its header may
  be empty), one column per dataset. A wide column is a dataset id, or a value of the
  `record_column` column of datasets.csv (DomainNet-270's `task{t}_{domain}_{shots}` names); an
  empty (or `NA`) wide cell means "no record".
- scores (optional): long `model,dataset,metric,value`; a pair may lack some or all metrics.

Files are comma-separated UTF-8 text (a UTF-8 or UTF-16 byte-order mark is honoured); a field
may be longer than the csv module's default limit (a label list of thousands of classes). A
header with spaces around its names, or one that is a single name holding `;` or tabs, is an
error with a hint (it would otherwise be read as a wide matrix of unknown datasets).

Every error is a `ValueError` naming the file, the CSV line (1-based, the header is line 1;
blank lines are skipped but counted), the column and the value. Nothing is dropped silently:
rows with unknown ids raise, or, with `drop_unknown=True` (`data.drop_unknown`), are dropped
with a warning giving the count; repeated records raise, or are combined as `duplicates`
(`data.duplicates`) says, and the count combined is logged.

Blank metadata cells: a cell that is empty or one of `NA`, `N/A`, `null`, `None`, `NaN` (any
case, spaces around ignored; `MISSING_VALUES`) is a missing value (NaN) in every metadata
column. Metadata columns whose every other value is a finite number are typed (int64, or
float64 when a cell is missing); all other columns stay strings exactly as written in the file.
`check_columns` says whether the configured feature columns may hold missing values (the
featurizer imputes them, `NodeFeatureConfig.impute`) and `blank_cells` counts them.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import logging
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from tpred.config import NodeFeatureConfig, ZooConfig
from tpred.data.ids import check_known_ids
from tpred.data.zoo import Zoo

__all__ = ["MISSING_VALUES", "blank_cells", "check_columns", "describe_blanks", "is_missing",
           "load_zoo", "read_datasets", "read_models", "read_records", "read_scores",
           "repo_root", "resolve_path"]

log = logging.getLogger(__name__)

RECORD_COLUMNS = ("model", "dataset", "accuracy")
SCORE_COLUMNS = ("model", "dataset", "metric", "value")
PAIR_COLUMNS = ("model", "dataset")
#: the datasets.csv column that names a dataset's column in a wide records file
ALIAS_COLUMN = "record_column"
#: cell texts that mean "no value" in metadata (compared lower-case, without surrounding spaces)
MISSING_VALUES = frozenset({"", "na", "n/a", "nan", "null", "none"})
#: how repeated records of one pair may be combined (`ZooConfig.duplicates`)
DUPLICATES = ("error", "mean", "max", "last")
#: encodings tried, in order (a byte-order mark decides between them)
ENCODINGS = ("utf-8", "utf-8-sig", "utf-16")


# ------------------------------------------------------------------------------------ paths
def repo_root() -> Path:
    """The repository root (parent of the `tpred` package) when run from a checkout, else cwd."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() else Path.cwd()


def resolve_path(path: str | Path, base_dir: Path | None = None) -> Path:
    """`path` itself if absolute, else `base_dir / path` (default base: the working directory).

    Config files make their relative paths absolute when read (`tpred.config`), so a relative
    path reaching this function came from `--set` or Python code: relative to the working
    directory, as a path typed in a shell is.
    """
    path = Path(path).expanduser()
    if path.is_absolute():
        return path
    return Path(os.path.normpath(Path(base_dir if base_dir is not None else Path.cwd()) / path))


# ------------------------------------------------------------------------------ raw reading
def read_csv_rows(path: str | Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Read a CSV as strings, exactly as written; return (frame, 1-based line of each row).

    The csv module (not `pd.read_csv`) keeps the true line numbers: blank lines are skipped but
    counted, and a quoted field spanning lines reports the line where its row ends.

    Raises:
        ValueError: a missing or empty file, text that is not UTF-8 (naming the line and the
            encodings tried), a ragged row, a repeated column name, a header whose names have
            spaces around them or that seems to use `;` or tabs as delimiter.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file (0 bytes); expected a header line and rows")
    header: list[str] | None = None
    rows: list[list[str]] = []
    lines: list[int] = []
    with _large_fields():
        reader = csv.reader(io.StringIO(_decode(path), newline=""))
        for row in reader:
            if not row:  # a blank line
                continue
            if header is None:
                header = row
                _check_header(header, path)
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


def _decode(path: Path) -> str:
    """The file's text: UTF-8 (a UTF-8 byte-order mark dropped), or UTF-16 with its BOM."""
    data = path.read_bytes()
    encoding = ("utf-16" if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
                else "utf-8-sig")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        bad = data[err.start:err.end]
        raise ValueError(f"{path}, line {line}: the file is not {encoding.removesuffix('-sig')} "
                         f"text (byte(s) {bad!r} at offset {err.start}: {err.reason}); encodings "
                         f"tried: {', '.join(ENCODINGS)} (by byte-order mark); save the file as "
                         f"UTF-8 (e.g. Excel: 'CSV UTF-8'; iconv -f latin1 -t utf-8)") from None


@contextlib.contextmanager
def _large_fields() -> Iterator[None]:
    """Lift the csv module's 128 KiB field limit (a label list of a large dataset) for a read."""
    old = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)  # the largest a C long takes on every platform
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _check_header(header: list[str], path: Path) -> None:
    """Errors with hints for headers that would be misread (as one column, or with odd names)."""
    if len(header) == 1:
        for sep, name in ((";", "';'"), ("\t", "tabs")):
            if sep in header[0]:
                raise ValueError(f"{path}, line 1: the header {header[0]!r} is one column "
                                 f"holding {name}: the file seems to use {name} as delimiter, "
                                 f"but tpred reads comma-separated files; save it with commas "
                                 f"(e.g. pandas: pd.read_csv(f, sep={sep!r}).to_csv(f, "
                                 f"index=False))")
    if spaced := [n for n in header if n != n.strip()]:
        raise ValueError(f"{path}, line 1: column name(s) {spaced} have spaces around them; "
                         f"tpred matches names exactly (a spaced 'dataset' would make a long "
                         f"table look wide): remove the spaces after the commas of the file")


def require_columns(frame: pd.DataFrame, columns: Iterable[str], path: Path | str,
                    what: str) -> None:
    """ValueError naming `path` and the missing columns of `what` unless `frame` has them all."""
    if missing := [c for c in columns if c not in frame.columns]:
        raise ValueError(f"{path}: missing column(s) {missing} of {what}; found "
                         f"{list(frame.columns)}")


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def is_missing(column: pd.Series) -> np.ndarray:
    """Which cells are missing: NaN/None, or a text in `MISSING_VALUES` (any case). Shape [N]."""
    text = column.astype(str).str.strip().str.lower()
    return (column.isna() | text.isin(MISSING_VALUES)).to_numpy()


def auto_type(column: pd.Series) -> pd.Series:
    """Missing cells become NaN; a column whose every other value is a finite number becomes
    numeric (float64 when a cell is missing); others stay as written (strings)."""
    missing = is_missing(column)
    num = pd.to_numeric(column.where(~missing), errors="coerce")
    if len(num) and (num.notna().to_numpy() | missing).all() \
            and np.isfinite(num.to_numpy(dtype=np.float64)[~missing]).all():
        return num
    return column.astype(str).where(~missing, np.nan)


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
                  *, lines: np.ndarray | None = None, key: str = "model_features",
                  hint: str | None = None) -> None:
    """Check that metadata has every column `config` uses, with the right kind of values.

    Missing cells (NaN, as `auto_type` makes blanks) are allowed when `config.impute` is
    `median` (the featurizer imputes them); with `error` the first one is an error.

    Args:
        frame: metadata as `read_models`/`read_datasets` return it (rows in file order).
        config: the node feature config of this node type.
        path: the file the frame came from, for messages.
        lines: CSV line of each row (default: row position + 2, i.e. no blank lines).
        key: the config key of `config` (`model_features`/`dataset_features`), for messages.
        hint: what a user can do about a blank cell with `impute: error` (default: the config
            key to set).

    Raises:
        ValueError: a configured column is absent (names the columns found); a numeric column
            holds a non-number or inf; a `log` column holds a negative value; every non-blank
            value of a text column is a number (it is not text); with `impute: error`, a blank
            cell.
    """
    path = Path(path)
    lines = np.arange(len(frame)) + 2 if lines is None else np.asarray(lines)
    if missing := [c for c in config.columns if c not in frame.columns]:
        raise ValueError(f"{path}: configured feature column(s) {missing} not found; columns "
                         f"found: {list(frame.columns)}")
    for col in config.columns:
        blank = is_missing(frame[col])
        if blank.any() and config.impute == "error":
            i = _first(blank)
            todo = hint or f"set {key}.impute: median to impute blank cells"
            raise ValueError(f"{path}, line {lines[i]}, column {col!r}: blank value "
                             f"{_text(frame[col].iloc[i])!r} and {key}.impute is 'error' "
                             f"({int(blank.sum())} blank cell(s) in this column); {todo}")
    for col in config.numeric:
        raw = frame[col]
        blank = is_missing(raw)
        num = pd.to_numeric(raw.where(~blank), errors="coerce").to_numpy(dtype=np.float64)
        if (bad := ~blank & ~np.isfinite(num)).any():
            i = _first(bad)
            raise ValueError(f"{path}, line {lines[i]}, column {col!r}: a numeric feature column "
                             f"must hold finite numbers (or blanks), got {_text(raw.iloc[i])!r} "
                             f"({int(bad.sum())} bad row(s))")
        if col in config.log and (neg := num < 0).any():
            i = _first(neg)
            raise ValueError(f"{path}, line {lines[i]}, column {col!r}: a log-scaled column must "
                             f"be >= 0, got {_text(raw.iloc[i])!r}")
    for col in config.text:
        raw = frame[col]
        written = ~is_missing(raw)
        if written.any() and pd.to_numeric(raw[written].astype(str),
                                           errors="coerce").notna().all():
            i = _first(written)
            raise ValueError(f"{path}, column {col!r}: declared a text column, but every value is "
                             f"a number (line {lines[i]}: {_text(raw.iloc[i])!r}); is it a "
                             f"numeric or categorical column?")


def _text(value: object) -> str:
    """A cell as the file wrote it (a number read as int64 without `.0`; NaN as blank)."""
    if isinstance(value, float) and np.isnan(value):
        return ""
    if isinstance(value, np.generic):
        value = value.item()
    return str(value)


def blank_cells(frame: pd.DataFrame, config: NodeFeatureConfig) -> dict[str, int]:
    """Blank (missing) cells per configured column of `frame`, columns without any left out."""
    counts = {col: int(is_missing(frame[col]).sum()) for col in config.columns
              if col in frame.columns}
    return {col: n for col, n in counts.items() if n}


def blank_rows(frame: pd.DataFrame, config: NodeFeatureConfig) -> np.ndarray:
    """Whether each row of `frame` has a blank cell in a configured column (`blank_cells`'
    blanks, per row) [N] bool."""
    blank = np.zeros(len(frame), dtype=bool)
    for col in config.columns:
        blank |= is_missing(frame[col])
    return blank


def describe_blanks(counts: Mapping[str, int], config: NodeFeatureConfig, where: str,
                    what: str) -> str | None:
    """One line saying how the blank cells `counts` of `config`'s columns are imputed.

    Args:
        counts: `blank_cells(...)`.
        where: the file or table, e.g. `models.csv`.
        what: the nodes whose statistics fill numbers, e.g. `the training models`.

    Returns:
        e.g. `models.csv: 7 blank cell(s) imputed: num_parameters 3, source_accuracy 4 (numbers:
        the median of the training models, flagged by a missing-indicator feature where
        training had blanks)`; None when there are no blanks.
    """
    if not counts:
        return None
    kinds = []
    if any(c in config.numeric for c in counts):
        kinds.append(f"numbers: the median of {what}, flagged by a missing-indicator feature "
                     f"where training had blanks")
    if any(c in config.categorical and c not in config.numeric for c in counts):
        kinds.append("categories: their own 'missing' category")
    if any(c in config.text for c in counts):
        kinds.append("text: the empty text")
    cells = ", ".join(f"{col} {n}" for col, n in counts.items())
    return (f"{where}: {sum(counts.values())} blank cell(s) imputed: {cells} "
            f"({'; '.join(kinds)})")


# ----------------------------------------------------------------------------------- records
def parse_accuracy(raw: pd.Series, path: Path, lines: np.ndarray, columns: np.ndarray | str,
                   *, percent: bool, hints: bool = True) -> np.ndarray:
    """Parse accuracies: finite numbers in [0, 1] (or [0, 100] divided by 100 with percent).

    Args:
        hints: name the config key that changes the reading (`data.percent`) in messages.

    Raises:
        ValueError: a value that is not a number in range (naming file, line, column, value);
            with `percent`, every value within [0, 1] (fractions, not percentages: dividing
            them by 100 would be silently wrong).
    """
    acc = pd.to_numeric(raw.astype(str).str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    hi = 100.0 if percent else 1.0
    if (bad := ~np.isfinite(acc) | (acc < 0) | (acc > hi)).any():
        i = _first(bad)
        col = columns if isinstance(columns, str) else columns[i]
        hint = ("" if percent or not (np.isfinite(acc[i]) and 1 < acc[i] <= 100)
                else "; percentages need data.percent: true" if hints
                else "; the run reads fractions (its data.percent is false)")
        raise ValueError(f"{path}, line {lines[i]}, column {col!r}: accuracy must be a number in "
                         f"[0, {hi:g}], got {raw.iloc[i]!r} ({int(bad.sum())} bad value(s)){hint}")
    if percent and len(acc) and acc.max() <= 1:
        i = int(np.argmax(acc))
        col = columns if isinstance(columns, str) else columns[i]
        todo = ("set data.percent: false" if hints
                else "the run reads percentages (its data.percent is true): give them as such")
        raise ValueError(f"{path}: data.percent is true, but every accuracy is within [0, 1] "
                         f"(the largest, line {lines[i]}, column {col!r}: {raw.iloc[i]!r}): "
                         f"these are fractions, and dividing them by 100 would be wrong; {todo}")
    return acc / 100.0 if percent else acc


def _check_ids(df: pd.DataFrame, path: Path, lines: np.ndarray, model_ids: pd.Index,
               dataset_ids: pd.Index, *, drop_unknown: bool) -> np.ndarray:
    """Mask of rows whose ids are known; raise for the first unknown one unless dropping."""
    return check_known_ids(df, {"model": model_ids, "dataset": dataset_ids}, str(path),
                           problem="is not in {kind}s.csv", lines=lines, drop=drop_unknown,
                           hint="; data.drop_unknown: true drops them with a warning",
                           stacklevel=3)


def check_duplicates(df: pd.DataFrame, key: list[str], path: Path | str,
                     lines: np.ndarray | None, *, hint: str = "") -> None:
    """ValueError naming the line of the first repeated `key` and of its first occurrence.

    Args:
        lines: CSV line of each row (None: positions are named as rows, 0-based).
        hint: appended to the message (what the user can do).
    """
    if (dup := df.duplicated(key).to_numpy()).any():
        i = _first(dup)
        same = (df[key] == df[key].iloc[i]).all(axis=1).to_numpy()
        at, first = ((f"line {lines[i]}", f"line {lines[_first(same)]}") if lines is not None
                     else (f"row {i}", f"row {_first(same)}"))
        raise ValueError(f"{path}, {at}, columns {key}: duplicate {df[key].iloc[i].tolist()} "
                         f"(first on {first}; {int(dup.sum())} duplicate row(s)){hint}")


def combine_duplicates(records: pd.DataFrame, lines: np.ndarray | None, where: str | Path,
                       how: str, *, hints: bool = True) -> pd.DataFrame:
    """One record per pair: an error for a repeated pair, or their mean / max / last value.

    Args:
        records: `model, dataset, accuracy` (float), in file order.
        lines: CSV line of each row, for messages (None: row positions).
        how: `error`, `mean`, `max` or `last` (the last in file order).
        hints: name the config key (`data.duplicates`) in the error.

    Returns:
        `records` itself without repeats; else one row per pair in order of first appearance.
        The number of pairs combined is logged.

    Raises:
        ValueError: `how` is `error` and a pair repeats (naming both lines), or `how` is unknown.
    """
    if how not in DUPLICATES:
        raise ValueError(f"duplicates must be one of {list(DUPLICATES)}, got {how!r}")
    repeated = records.duplicated(PAIR_COLUMNS, keep=False).to_numpy()
    if not repeated.any():
        return records
    if how == "error":
        check_duplicates(records, list(PAIR_COLUMNS), where, lines,
                         hint="; set data.duplicates to mean, max or last to combine the "
                              "records of a pair" if hints else
                         "; give one record per pair")
    grouped = records.groupby(list(PAIR_COLUMNS), sort=False)["accuracy"]
    out = grouped.agg(how).reset_index()
    log.info("%s: %d pair(s) have several records (%d rows); combined by their %s "
             "(data.duplicates: %s)", where, int(records[repeated].groupby(
                 list(PAIR_COLUMNS)).ngroups), int(repeated.sum()), how, how)
    return out.astype({"model": str, "dataset": str})


def is_long(frame: pd.DataFrame) -> bool:
    """Whether a records table is long (has a `dataset` or `accuracy` column) rather than wide."""
    return bool({"dataset", "accuracy"} & set(frame.columns))


def read_records(path: str | Path, model_ids: Iterable[str], dataset_ids: Iterable[str], *,
                 fmt: str = "auto", percent: bool = False, drop_unknown: bool = False,
                 aliases: Mapping[str, str] | None = None,
                 duplicates: str = "error") -> pd.DataFrame:
    """Read fine-tuning records, long or wide, into long form.

    Args:
        path: the CSV file.
        model_ids, dataset_ids: the ids of models.csv and datasets.csv.
        fmt: `long` (`model,dataset,accuracy`), `wide` (models as rows, first column the model
            id, one column per dataset; an empty or `NA` cell is no record), or `auto` (long
            when the header has a `dataset` or `accuracy` column, else wide).
        percent: accuracies are percentages in [0, 100]; they are divided by 100.
        drop_unknown: drop (with a warning giving the count) rows/columns naming unknown ids
            instead of raising.
        aliases: wide column name -> dataset id, for wide columns that are not dataset ids
            (`load_zoo` passes datasets.csv's `record_column`).
        duplicates: several records of one pair: `error`, or one value per pair, their `mean`,
            `max` or the `last` in file order (`combine_duplicates`).

    Returns:
        Columns `model` (str), `dataset` (str), `accuracy` (float64 in [0, 1]); long: file
        order; wide: row-major (models in file order, datasets in column order); a combined
        pair where it first appears.

    Raises:
        ValueError: naming file, line, column and value, for an empty file, a missing column,
            an unknown model/dataset id or wide column, a duplicate pair, a NaN/inf/empty or
            out-of-range accuracy, percentages that are all within [0, 1].
    """
    path = Path(path)
    if fmt not in ("auto", "long", "wide"):
        raise ValueError(f"read_records: fmt must be 'auto', 'long' or 'wide', got {fmt!r}")
    frame, lines = read_csv_rows(path)
    return parse_records(frame, lines, path, model_ids, dataset_ids, fmt=fmt, percent=percent,
                         drop_unknown=drop_unknown, aliases=aliases, duplicates=duplicates)


def parse_records(frame: pd.DataFrame, lines: np.ndarray, path: Path, model_ids: Iterable[str],
                  dataset_ids: Iterable[str], *, fmt: str = "auto", percent: bool = False,
                  drop_unknown: bool = False, aliases: Mapping[str, str] | None = None,
                  duplicates: str = "error", hints: bool = True) -> pd.DataFrame:
    """`read_records` on a CSV already read by `read_csv_rows` (frame of text, line per row).

    `hints`: messages name the config keys that change the reading (`data.duplicates`, ...).
    """
    model_ids, dataset_ids = pd.Index(model_ids), pd.Index(dataset_ids)
    if fmt == "long" or (fmt == "auto" and is_long(frame)):
        return _read_long(frame, lines, path, model_ids, dataset_ids, percent=percent,
                          drop_unknown=drop_unknown, duplicates=duplicates, hints=hints)
    return _read_wide(frame, lines, path, model_ids, dataset_ids, percent=percent,
                      drop_unknown=drop_unknown, aliases=aliases or {}, duplicates=duplicates,
                      hints=hints)


def _read_long(frame: pd.DataFrame, lines: np.ndarray, path: Path, model_ids: pd.Index,
               dataset_ids: pd.Index, *, percent: bool, drop_unknown: bool, duplicates: str,
               hints: bool) -> pd.DataFrame:
    require_columns(frame, RECORD_COLUMNS, path, "long records (model,dataset,accuracy)")
    df = frame[list(RECORD_COLUMNS)].astype(str)
    keep = _check_ids(df, path, lines, model_ids, dataset_ids, drop_unknown=drop_unknown)
    return parse_long_records(df[keep], lines[keep], path, percent=percent,
                              duplicates=duplicates, hints=hints)


def parse_long_records(df: pd.DataFrame, lines: np.ndarray, where: str | Path, *,
                       percent: bool, duplicates: str = "error",
                       hints: bool = True) -> pd.DataFrame:
    """Long records whose ids are checked (`model, dataset, accuracy` as text) -> typed records.

    Raises:
        ValueError: an accuracy that is not a number in [0, 1] ([0, 100] with percent), or a
            duplicate pair with `duplicates="error"`, naming `where`, the line and the column.
    """
    acc = parse_accuracy(df["accuracy"], where, lines, "accuracy", percent=percent, hints=hints)
    out = pd.DataFrame({"model": df["model"].to_numpy(dtype=object),
                        "dataset": df["dataset"].to_numpy(dtype=object),
                        "accuracy": acc}).astype({"model": str, "dataset": str})
    return combine_duplicates(out, lines, where, duplicates, hints=hints)


def _read_wide(frame: pd.DataFrame, lines: np.ndarray, path: Path, model_ids: pd.Index,
               dataset_ids: pd.Index, *, percent: bool, drop_unknown: bool,
               aliases: Mapping[str, str], duplicates: str, hints: bool) -> pd.DataFrame:
    id_header, *columns = frame.columns.tolist()
    if not columns:
        raise ValueError(f"{path}: a wide records file needs the model id column and at least one "
                         f"dataset column; found {list(frame.columns)}")
    drop_hint = "data.drop_unknown: true drops them with a warning" if hints else "fix them"
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
                         f"such column(s); {drop_hint})")
    if unknown:
        warnings.warn(f"{path}: dropped {len(unknown)} column(s) naming no dataset of "
                      f"datasets.csv", stacklevel=3)
    columns = [c for c in columns if c in names]
    seen: dict[str, str] = {}
    dup_hint = ("; set data.duplicates to mean, max or last to combine the records of a pair"
                if hints else "")
    for col in columns:
        if names[col] in seen and duplicates == "error":
            raise ValueError(f"{path}, line 1, column {col!r}: dataset {names[col]!r} appears "
                             f"twice (also column {seen[names[col]]!r}): duplicate "
                             f"pairs{dup_hint}")
        seen[names[col]] = col
    models = frame[id_header].astype(str)
    keep = check_known_ids(pd.DataFrame({id_header: models}), {id_header: model_ids}, str(path),
                           problem="is not in models.csv", lines=lines, kinds={id_header: "model"},
                           drop=drop_unknown, stacklevel=3, hint=f"; {drop_hint}")
    frame, lines, models = frame[keep], lines[keep], models[keep]
    if duplicates == "error":
        check_duplicates(pd.DataFrame({"model": models}), ["model"], path, lines,
                         hint=dup_hint)
    values = frame[columns].astype(str).to_numpy()                          # [M, D] text
    blank = np.isin(np.char.lower(np.char.strip(values.astype(str))), list(MISSING_VALUES))
    rows, cols = np.nonzero(~blank)                                        # blank = no record
    raw = pd.Series(values[rows, cols])
    acc = parse_accuracy(raw, path, lines[rows], np.asarray(columns, dtype=object)[cols],
                         percent=percent, hints=hints)
    out = pd.DataFrame({"model": models.to_numpy(dtype=object)[rows],
                        "dataset": np.asarray([names[c] for c in columns], dtype=object)[cols],
                        "accuracy": acc}).astype({"model": str, "dataset": str})
    return combine_duplicates(out, lines[rows], path, duplicates, hints=hints)


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
             drop_unknown: bool | None = None) -> Zoo:
    """Read and validate a zoo's tables as `cfg` names them.

    Logs (INFO, logger `tpred.data.tables`) how many blank cells of which configured feature
    columns will be imputed, and how many repeated records were combined.

    Args:
        cfg: where the tables are and how to read them (`percent`, `duplicates`, ...); a
            relative `cfg.root` is resolved against `base_dir`.
        base_dir: default: the current working directory (a config file makes its paths
            absolute when read, see `tpred.config`).
        model_features, dataset_features: when given, the metadata must hold their columns with
            the right kind of values (`check_columns`).
        drop_unknown: drop records/scores naming unknown ids, with a warning, instead of raising
            (default: `cfg.drop_unknown`).

    Raises:
        ValueError: a missing folder or file, or any error of the readers and `check_columns`.
    """
    drop_unknown = cfg.drop_unknown if drop_unknown is None else drop_unknown
    root = resolve_path(cfg.root, base_dir)
    if not root.is_dir():
        raise ValueError(f"zoo folder {root} (data.root={cfg.root!r}) does not exist")
    models_path, datasets_path = root / cfg.models, root / cfg.datasets
    models, model_lines = read_metadata(models_path, "model")
    datasets, dataset_lines = read_metadata(datasets_path, "dataset")
    for frame, lines, features, path, key, what in (
            (models, model_lines, model_features, models_path, "model_features", "models"),
            (datasets, dataset_lines, dataset_features, datasets_path, "dataset_features",
             "datasets")):
        if features is not None:
            check_columns(frame, features, path, lines=lines, key=key)
            if line := describe_blanks(blank_cells(frame, features), features, path.name,
                                       f"the training {what}"):
                log.info("%s", line)
    aliases = ({str(a): d for d, a in datasets[ALIAS_COLUMN].dropna().items()}
               if ALIAS_COLUMN in datasets.columns else {})
    records = read_records(root / cfg.records, models.index, datasets.index,
                           fmt=cfg.records_format, percent=cfg.percent,
                           drop_unknown=drop_unknown, aliases=aliases,
                           duplicates=cfg.duplicates)
    scores = (None if cfg.scores is None else
              read_scores(root / cfg.scores, models.index, datasets.index,
                          drop_unknown=drop_unknown))
    return Zoo.from_frames(models, datasets, records, scores)
