"""Scores tables: every (model, dataset) pair x every metric, in parallel, resumable.

`score_directory` reads `DIR/<model>/<dataset>.npz` feature files and writes the long table
`model,dataset,metric,value` that `tpred.data` reads; `score_arrays` does the same in memory
(for the zoo builder). Both apply per-dataset combine steps (NCTI normalises its components over
the candidate models of each dataset) and never drop a pair silently: what cannot be scored goes
to an errors table `model,dataset,metric,kind,reason` (kind `error`), and so does a value that
was written but means nothing (kind `note`: an H-score saturated at C − 1 because the feature
dimension is at least the number of samples; `SaturatedScoreWarning`).

Files written next to `out_csv` (for `scores.csv`):

* `scores.csv`: the scores; rows are appended as pairs finish, so an interrupted run keeps its
  work, and the file is rewritten sorted at the end.
* `scores.errors.csv`: pairs x metrics that could not be scored in this run (`kind` error,
  with the reason; a resumed run retries them), and values scored in this run that are flagged
  (`kind` note: the value is in scores.csv, the reason says why not to trust it, e.g. a
  saturated H-score: use hscore_shrinkage there). Header only when there were none.
* `scores.components.csv`: `model,dataset,metric,component,value`, the per-pair components of
  combine metrics, so that a resumed run that adds a model recombines the whole dataset (a new
  candidate changes every model's normalised NCTI).
"""

from __future__ import annotations

import csv
import logging
import os
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from tpred.errors import SaturatedScoreWarning
from tpred.parallel import BACKENDS as BACKENDS  # re-exported: the choices of `backend`
from tpred.parallel import check_options, run_tasks
from tpred.scores.registry import compute_pair, get_metric

log = logging.getLogger(__name__)

COLUMNS = ["model", "dataset", "metric", "value"]
ERROR_COLUMNS = ["model", "dataset", "metric", "kind", "reason"]
COMPONENT_COLUMNS = ["model", "dataset", "metric", "component", "value"]

Arrays = tuple[Any, Any] | tuple[Any, Any, Any]  # (features [N, D], labels [N], probs [N, Cs])


@dataclass(frozen=True)
class ScoreSummary:
    """What a run did; `score_directory` attaches it as `df.attrs["summary"]`.

    Attributes:
        num_pairs: (model, dataset) pairs found.
        num_requested: pairs x metrics asked for.
        num_skipped: pairs x metrics already in `out_csv` (or its components file), not redone.
        num_computed: pairs x metrics computed in this run without error.
        num_errors: error rows of the errors table (this run's failures, combine steps
            included).
        num_notes: note rows of the errors table (values scored but flagged, e.g. saturated).
        out_csv: the scores file; None for `score_arrays`.
        errors_csv: the errors file; None for `score_arrays`.
    """

    num_pairs: int
    num_requested: int
    num_skipped: int
    num_computed: int
    num_errors: int
    out_csv: Path | None = None
    num_notes: int = 0
    errors_csv: Path | None = None

    def __str__(self) -> str:
        where = f" -> {self.out_csv}" if self.out_csv else ""
        errors = f"; {self.num_errors} error(s)" + (f" in {self.errors_csv}"
                                                    if self.errors_csv and self.num_errors else "")
        if self.num_notes:
            errors += f"; {self.num_notes} value(s) flagged (notes in the errors table)"
        return (f"{self.num_pairs} pair(s) x metric(s): {self.num_requested} requested, "
                f"{self.num_skipped} already scored, {self.num_computed} computed{errors}{where}")


@dataclass(frozen=True)
class _Task:
    """One pair and the metrics still to compute on it (a file path or arrays in memory)."""

    model: str
    dataset: str
    source: Path | tuple[Any, Any, Any]
    metrics: tuple[str, ...]


@dataclass
class _Results:
    values: list[tuple[str, str, str, float]]
    components: list[tuple[str, str, str, int, float]]
    errors: list[tuple[str, str, str, str]]
    #: values kept but flagged: (model, dataset, metric, reason)
    notes: list[tuple[str, str, str, str]] = field(default_factory=list)


def errors_path(out_csv: str | os.PathLike) -> Path:
    """`scores.csv` -> `scores.errors.csv`."""
    return Path(out_csv).with_suffix(".errors.csv")


def components_path(out_csv: str | os.PathLike) -> Path:
    """`scores.csv` -> `scores.components.csv`."""
    return Path(out_csv).with_suffix(".components.csv")


# ------------------------------------------------------------------------------- public API
def score_directory(features_dir: str | os.PathLike, out_csv: str | os.PathLike,
                    metrics: Sequence[str] | str, *, jobs: int = 1, backend: str = "loky",
                    address: str | None = None, retries: int = 2,
                    random_state: int | None = 0, progress: bool = True) -> pd.DataFrame:
    """Score every `features_dir/<model>/<dataset>.npz` with every metric; write `out_csv`.

    Each file holds arrays `features` [N, D] and `labels` [N], optionally `probs` [N, Cs]
    (source-head probabilities, for `leep` and `nce`). Pairs x metrics already in `out_csv` are
    skipped (resume); new values are appended as they finish; combine steps (NCTI) run at the end
    over all models of each dataset, including those scored by earlier runs. Unreadable files and
    inputs a metric rejects (ValueError: one-sample class, NaN, a metric needing `probs` when
    the file has none, ...) are listed in `errors_path(out_csv)` and the rest completes.

    Args:
        features_dir: the folder of model folders.
        out_csv: scores file, long form `model,dataset,metric,value`.
        metrics: registry names (`get_metric`), or one comma-separated string.
        jobs: local workers (-1 = all cores): loky processes, or the size of the local Dask/Ray
            cluster started when no cluster is given.
        backend: `"loky"` (local processes), `"dask"` or `"ray"`: one task per pair, run by
            `tpred.parallel.run_tasks` (see there for how a cluster is found). On a cluster every
            worker must be able to read `features_dir`.
        address: the Dask scheduler (`tcp://host:8786` or a scheduler file) or Ray cluster.
        retries: extra attempts of a pair whose task failed on Dask or Ray (a lost worker, an
            unexpected exception); a pair that still fails is an error row, retried by a rerun.
        random_state: seed given to every random metric on every pair (NLEEP, NCTI).
        progress: show a tqdm progress bar (one step per pair).

    Returns:
        The whole scores table as written (earlier rows included), columns `COLUMNS`, with the
        run's `ScoreSummary` in `.attrs["summary"]`.

    Raises:
        ValueError: `features_dir` missing or without any `.npz`, an unknown metric, bad
            execution options (`tpred.parallel.check_options`), an unreachable cluster, or an
            existing `out_csv`/components file that is not a scores table.
    """
    names = _resolve_metrics(metrics)
    check_options(backend, jobs, address, retries)
    features_dir, out_csv = Path(features_dir), Path(out_csv)
    pairs = _discover(features_dir)
    existing = _read_table(out_csv, COLUMNS)
    comp_csv, err_csv = components_path(out_csv), errors_path(out_csv)
    old_components = _read_table(comp_csv, COMPONENT_COLUMNS)
    done = _done_keys(existing, old_components, names)

    tasks, num_skipped = [], 0
    for (model, dataset), path in pairs.items():
        pending = tuple(n for n in names if (model, dataset, n) not in done)
        num_skipped += len(names) - len(pending)
        if pending:
            tasks.append(_Task(model, dataset, path, pending))

    results = _Results([], [], [])
    try:
        with _Appender(out_csv, COLUMNS) as values_out, \
                _Appender(comp_csv, COMPONENT_COLUMNS) as comps_out:
            def keep(res: _Results) -> None:
                values_out.write(res.values)
                comps_out.write(res.components)
            _execute(tasks, jobs=jobs, backend=backend, address=address, retries=retries,
                     random_state=random_state, progress=progress, on_result=keep, into=results)
    finally:  # even when interrupted: the errors seen so far, never a stale list
        _write_csv(err_csv, _error_rows(results.errors, results.notes), ERROR_COLUMNS)

    all_components = pd.concat([old_components, _frame(results.components, COMPONENT_COLUMNS)],
                               ignore_index=True)
    combined, combine_errors = _combine(all_components, names)
    recombined = {n for n in names if get_metric(n).combine is not None}
    table = pd.concat([existing[~existing["metric"].isin(recombined)],
                       _frame(results.values, COLUMNS), _frame(combined, COLUMNS)],
                      ignore_index=True)
    table = _sorted(table)
    errors = _sorted(_frame(_error_rows(results.errors + combine_errors, results.notes),
                            ERROR_COLUMNS))
    _write_csv(out_csv, table.itertuples(index=False), COLUMNS)
    _write_csv(err_csv, errors.itertuples(index=False), ERROR_COLUMNS)
    _write_csv(comp_csv, _sorted(all_components).itertuples(index=False), COMPONENT_COLUMNS)

    summary = ScoreSummary(num_pairs=len(pairs), num_requested=len(pairs) * len(names),
                           num_skipped=num_skipped,
                           num_computed=sum(len(t.metrics) for t in tasks) - len(results.errors),
                           num_errors=len(errors) - len(results.notes), out_csv=out_csv,
                           errors_csv=err_csv, num_notes=len(results.notes))
    log.info("%s", summary)
    if summary.num_errors:
        warnings.warn(f"score_directory: {summary.num_errors} pair(s) x metric(s) could not be "
                      f"scored; reasons in {err_csv}", stacklevel=2)
    _warn_notes(results.notes, err_csv)
    table.attrs["summary"] = summary
    return table


def score_arrays(pairs: Mapping[tuple[str, str], Arrays], metrics: Sequence[str] | str, *,
                 jobs: int = 1, backend: str = "loky", address: str | None = None,
                 retries: int = 2, random_state: int | None = 0,
                 progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score pairs held in memory: `{(model, dataset): (features, labels[, probs])}`.

    The in-memory twin of `score_directory` (same metrics, combine steps and error rows; no
    files, no resume).

    Shapes: features [N, D]; labels [N]; probs [N, Cs] or None.

    Returns:
        (scores with columns `COLUMNS`, errors with columns `ERROR_COLUMNS`), sorted by model,
        dataset, metric; scores carry a `ScoreSummary` in `.attrs["summary"]`.

    Raises:
        ValueError: an unknown metric or backend, a bad `jobs`, or a value of `pairs` that is not
            a 2- or 3-tuple.
    """
    names = _resolve_metrics(metrics)
    check_options(backend, jobs, address, retries)
    tasks = []
    for (model, dataset), arrays in pairs.items():
        if not isinstance(arrays, tuple) or len(arrays) not in (2, 3):
            raise ValueError(f"score_arrays: pairs[{(model, dataset)!r}] must be a tuple "
                             f"(features, labels) or (features, labels, probs), got "
                             f"{type(arrays).__name__} of length {len(arrays)}"
                             if isinstance(arrays, tuple) else
                             f"score_arrays: pairs[{(model, dataset)!r}] must be a tuple "
                             f"(features, labels[, probs]), got {type(arrays).__name__}")
        source = (*arrays, None) if len(arrays) == 2 else arrays
        tasks.append(_Task(str(model), str(dataset), source, names))
    results = _execute(tasks, jobs=jobs, backend=backend, address=address, retries=retries,
                       random_state=random_state, progress=progress, on_result=None)
    combined, combine_errors = _combine(_frame(results.components, COMPONENT_COLUMNS), names)
    scores = _sorted(_frame(results.values + combined, COLUMNS))
    errors = _sorted(_frame(_error_rows(results.errors + combine_errors, results.notes),
                            ERROR_COLUMNS))
    scores.attrs["summary"] = ScoreSummary(
        num_pairs=len(tasks), num_requested=len(tasks) * len(names), num_skipped=0,
        num_computed=len(tasks) * len(names) - len(results.errors),
        num_errors=len(errors) - len(results.notes), num_notes=len(results.notes))
    _warn_notes(results.notes, None)
    return scores, errors


# ------------------------------------------------------------------------------- validation
def _resolve_metrics(metrics: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(metrics, str):
        metrics = metrics.split(",")
    names = tuple(dict.fromkeys(m.strip() for m in metrics if m.strip()))  # ordered, unique
    if not names:
        raise ValueError("metrics: give at least one metric name")
    for name in names:
        get_metric(name)  # raises, listing the valid names
    return names


def _discover(features_dir: Path) -> dict[tuple[str, str], Path]:
    """`{(model, dataset): path}` of `features_dir/<model>/<dataset>.npz`, sorted."""
    if not features_dir.is_dir():
        raise ValueError(f"features directory {str(features_dir)!r} does not exist or is not a "
                         "directory")
    pairs = {(m.name, f.stem): f
             for m in sorted(p for p in features_dir.iterdir() if p.is_dir())
             for f in sorted(m.glob("*.npz")) if f.is_file()}
    if not pairs:
        raise ValueError(f"features directory {str(features_dir)!r} holds no "
                         "<model>/<dataset>.npz file")
    return pairs


def _read_table(path: Path, columns: list[str]) -> pd.DataFrame:
    """An earlier run's table (empty if absent), checked: columns, numbers, no duplicate key."""
    if not path.exists() or path.stat().st_size == 0:
        return _frame([], columns)
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    if missing := [c for c in columns if c not in df.columns]:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(df.columns)} "
                         f"(expected {','.join(columns)})")
    df = df[columns]
    value = pd.to_numeric(df["value"], errors="coerce")
    bad = value.isna()
    if "component" in columns:  # a component may be NaN (the combine step then reports it)
        bad &= df["value"].str.lower() != "nan"
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{path}, line {i + 2}: column 'value' must be a number, got "
                         f"{df['value'].iloc[i]!r}")
    df = df.assign(value=value.astype(np.float64))
    if "component" in columns:
        if (bad := ~df["component"].str.fullmatch(r"\d+")).any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{path}, line {i + 2}: column 'component' must be an integer >= 0, "
                             f"got {df['component'].iloc[i]!r}")
        df = df.assign(component=df["component"].astype(int))
    key = [c for c in columns if c != "value"]
    if (dup := df.duplicated(key)).any():
        i = int(np.flatnonzero(dup)[0])
        raise ValueError(f"{path}, line {i + 2}: duplicate {'/'.join(key)} "
                         f"{df[key].iloc[i].tolist()}")
    return df.reset_index(drop=True)


def _done_keys(existing: pd.DataFrame, components: pd.DataFrame,
               names: Sequence[str]) -> set[tuple[str, str, str]]:
    """(model, dataset, metric) already scored: in the table, or, for combine metrics, whose
    components are stored (their table rows are recomputed from those)."""
    combine = {n for n in names if get_metric(n).combine is not None}
    done = {k for k in zip(existing["model"], existing["dataset"], existing["metric"],
                           strict=True) if k[2] not in combine}
    done |= set(zip(components["model"], components["dataset"], components["metric"],
                    strict=True))
    return done


# ------------------------------------------------------------------------------- execution
def _load(source: Path | tuple[Any, Any, Any]) -> tuple[Any, Any, Any]:
    """(features, labels, probs or None) of a task.

    Raises:
        ValueError: the file cannot be read as an .npz, or lacks `features`/`labels`.
    """
    if not isinstance(source, Path):
        return source
    try:
        with open(source, "rb") as fh:  # else np.load takes any non-zip file for a pickle
            if (head := fh.read(4)) != b"PK\x03\x04":
                raise ValueError(f"{source}: not an .npz file (a zip archive starts with "
                                 f"b'PK\\x03\\x04', this one with {head!r})")
        with np.load(source, allow_pickle=False) as npz:
            files = sorted(npz.files)
            if missing := [k for k in ("features", "labels") if k not in files]:
                raise ValueError(f"{source}: missing array(s) {missing}; found {files}")
            return (npz["features"], npz["labels"],
                    npz["probs"] if "probs" in files else None)
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise ValueError(f"{source}: unreadable .npz ({type(err).__name__}: {err})") from err
    except ValueError as err:
        if str(err).startswith(str(source)):
            raise
        raise ValueError(f"{source}: unreadable .npz ({err})") from err


#: feature matrices with fewer entries than this are scored with one BLAS thread
SMALL_FEATURES = 2_000_000


def _score_task(task: _Task, random_state: int | None) -> _Results:
    """Compute the pending metrics of one pair (runs in a joblib worker)."""
    out = _Results([], [], [])
    try:
        features, labels, probs = _load(task.source)
    except ValueError as err:
        out.errors.extend((task.model, task.dataset, n, str(err)) for n in task.metrics)
        return out
    # BLAS/OpenMP thread pools cost more than they save on small arrays (measured on the
    # digits zoo: 31 s -> 5.6 s for one model's 162 pairs with one thread); large ones keep them.
    small = features is None or features.size < SMALL_FEATURES
    for name in task.metrics:
        with warnings.catch_warnings(record=True) as caught, \
                threadpool_limits(limits=1 if small else None):
            warnings.simplefilter("always")
            try:
                value = compute_pair(name, features, labels, probs, random_state=random_state)
            except ValueError as err:
                out.errors.append((task.model, task.dataset, name,
                                   f"{type(err).__name__}: {err}"))
                continue
        parts = value if isinstance(value, tuple) else (value,)
        if not np.all(np.isfinite(parts)):
            said = "; ".join(str(w.message) for w in caught)
            out.errors.append((task.model, task.dataset, name,
                               f"non-finite value {value!r}" + (f" ({said})" if said else "")))
            continue
        for w in caught:  # finite result: pass the metric's warnings on, naming the pair
            if issubclass(w.category, SaturatedScoreWarning):  # a note, warned once per run
                out.notes.append((task.model, task.dataset, name, str(w.message)))
                continue
            warnings.warn(f"{task.model}/{task.dataset} {name}: {w.message}", w.category,
                          stacklevel=1)
        if isinstance(value, tuple):
            out.components.extend((task.model, task.dataset, name, i, float(v))
                                  for i, v in enumerate(value))
        else:
            out.values.append((task.model, task.dataset, name, value))
    return out


def _execute(tasks: list[_Task], *, jobs: int, backend: str, address: str | None,
             retries: int, random_state: int | None, progress: bool,
             on_result: Callable[[_Results], None] | None,
             into: _Results | None = None) -> _Results:
    """Run `_score_task` over `tasks` with `tpred.parallel.run_tasks`, collecting into `into`
    (kept if interrupted); `on_result` sees each pair's results as they arrive. A task that
    failed on the engine (after its retries) becomes one error row per pending metric."""
    total = _Results([], [], []) if into is None else into
    work = partial(_score_task, random_state=random_state)
    for outcome in run_tasks(work, tasks, backend=backend, jobs=jobs, address=address,
                             retries=retries, progress=progress, desc="scoring"):
        task = outcome.task
        res = outcome.result if outcome.ok else _Results([], [], [
            (task.model, task.dataset, n, f"task failed on backend {backend!r}: {outcome.error}")
            for n in task.metrics])
        total.values.extend(res.values)
        total.components.extend(res.components)
        total.errors.extend(res.errors)
        total.notes.extend(res.notes)
        if on_result is not None:
            on_result(res)
    return total


# ------------------------------------------------------------------------------- combine steps
def _combine(components: pd.DataFrame, names: Sequence[str]
             ) -> tuple[list[tuple[str, str, str, float]], list[tuple[str, str, str, str]]]:
    """Per-dataset combine steps: components of every model of a dataset -> one score each."""
    rows: list[tuple[str, str, str, float]] = []
    errors: list[tuple[str, str, str, str]] = []
    for name in names:
        spec = get_metric(name)
        if spec.combine is None:
            continue
        comps = components[components["metric"] == name]
        for dataset, group in comps.groupby("dataset", sort=True):
            wide = group.pivot(index="model", columns="component", values="value").sort_index()
            models = wide.index.tolist()
            try:
                values = list(spec.combine([tuple(r) for r in wide.to_numpy(np.float64)]))
            except ValueError as err:
                errors.extend((m, dataset, name, f"combine over {len(models)} model(s): "
                               f"{type(err).__name__}: {err}") for m in models)
                continue
            assert len(values) == len(models), "a combine step returns one value per model"
            for model, value in zip(models, values, strict=True):
                if np.isfinite(value):
                    rows.append((model, dataset, name, float(value)))
                else:
                    errors.append((model, dataset, name,
                                   f"combine over {len(models)} model(s) gave {value!r} (needs "
                                   "at least 2 models whose components differ)"))
    return rows, errors


# ------------------------------------------------------------------------------- notes
def _error_rows(errors: Iterable[tuple[str, str, str, str]],
                notes: Iterable[tuple[str, str, str, str]]) -> list[tuple[str, ...]]:
    """Rows of the errors table (`ERROR_COLUMNS`): failures as kind `error`, notes as `note`."""
    return ([(m, d, metric, "error", reason) for m, d, metric, reason in errors]
            + [(m, d, metric, "note", reason) for m, d, metric, reason in notes])


def _warn_notes(notes: list[tuple[str, str, str, str]], where: Path | None) -> None:
    """One warning per metric for the flagged values of a run (not one per pair)."""
    if not notes:
        return
    per_metric = pd.Series([n[2] for n in notes]).value_counts(sort=False)
    listed = f"; listed (kind 'note') in {where}" if where is not None else ""
    for metric, count in per_metric.items():
        example = next(n[3] for n in notes if n[2] == metric)
        warnings.warn(f"{count} {metric} value(s) are flagged as meaningless ({example}){listed}",
                      SaturatedScoreWarning, stacklevel=3)


# ------------------------------------------------------------------------------- files
def _frame(rows: Iterable[tuple], columns: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(list(rows), columns=columns)
    for col in columns:
        df[col] = (df[col].astype(np.float64) if col == "value" else
                   df[col].astype(int) if col == "component" else df[col].astype(str))
    return df


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    key = [c for c in ("model", "dataset", "metric", "component") if c in df.columns]
    return df.sort_values(key, kind="stable").reset_index(drop=True)


def _write_csv(path: Path, rows: Iterable[tuple], columns: list[str]) -> None:
    """Write atomically (a temporary file, then rename): a crash never leaves half a table."""
    tmp = path.with_name(f".{path.name}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        writer.writerows(rows)
    os.replace(tmp, path)


class _Appender:
    """Appends rows to a CSV as results arrive (header first if the file is new)."""

    def __init__(self, path: Path, columns: list[str]) -> None:
        self.path, self.columns = path, columns

    def __enter__(self) -> _Appender:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        if not new:
            with open(self.path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                needs_newline = fh.read(1) not in (b"\n", b"\r")
        self.fh = open(self.path, "a", newline="")  # noqa: SIM115  (closed in __exit__)
        if not new and needs_newline:
            self.fh.write("\n")
        self.writer = csv.writer(self.fh)
        if new:
            self.writer.writerow(self.columns)
        return self

    def write(self, rows: list[tuple]) -> None:
        if rows:
            self.writer.writerows(rows)
            self.fh.flush()

    def __exit__(self, *exc: object) -> None:
        self.fh.close()
