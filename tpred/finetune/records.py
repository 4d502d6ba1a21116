"""The records file `tpred.finetune` writes: one row per (model, dataset, protocol), appended as
pairs finish (resumable), and its errors file.

Columns: `model, dataset, accuracy` (the long records `tpred.train` reads; extra columns are
ignored there), `protocol` (`linear-probe` or `finetune`), `train_size`, `test_size` (items
used), `seconds`, `settings` (the protocol's options, e.g. `C=1.0` or `epochs=3 lr=0.0001 ...`).
Errors: `<out stem>.errors.csv` with `model, dataset, protocol, item, reason` (item: an
unreadable image or row; blank when the whole pair failed).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tpred.extract.run import write_atomic

RECORD_COLUMNS = ["model", "dataset", "accuracy", "protocol", "train_size", "test_size",
                  "seconds", "settings"]
ERROR_COLUMNS = ["model", "dataset", "protocol", "item", "reason"]
PROTOCOLS = ("linear-probe", "finetune")

Row = tuple[str, str, float, str, int, int, float, str]
ErrorRow = tuple[str, str, str, str, str]


def errors_path(out_csv: str | os.PathLike) -> Path:
    """`records.csv` -> `records.errors.csv`."""
    return Path(out_csv).with_suffix(".errors.csv")


def read_records_table(path: str | Path) -> pd.DataFrame:
    """An earlier run's records (empty if absent), checked.

    Raises:
        ValueError: missing columns, an accuracy outside [0, 1], or a repeated
            (model, dataset, protocol), naming the file and line.
    """
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=RECORD_COLUMNS)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if missing := [c for c in RECORD_COLUMNS if c not in table.columns]:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(table.columns)} "
                         f"(not a tpred.finetune records file?)")
    accuracy = pd.to_numeric(table["accuracy"], errors="coerce")
    if (bad := ~accuracy.between(0, 1)).any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{path}, line {i + 2}, column 'accuracy': must be a number in [0, 1], "
                         f"got {table['accuracy'].iloc[i]!r}")
    if (dup := table.duplicated(["model", "dataset", "protocol"])).any():
        i = int(np.flatnonzero(dup)[0])
        raise ValueError(f"{path}, line {i + 2}: repeated model/dataset/protocol "
                         f"{table.iloc[i][['model', 'dataset', 'protocol']].tolist()}")
    return table[RECORD_COLUMNS]


def done_pairs(table: pd.DataFrame, protocol: str) -> set[tuple[str, str]]:
    """(model, dataset) pairs of `table` already recorded under `protocol`."""
    rows = table[table["protocol"] == protocol]
    return set(zip(rows["model"], rows["dataset"], strict=True))


class RecordsWriter:
    """Appends record rows as pairs finish (header first for a new file), keeps the errors file
    current, and rewrites the records sorted at the end (atomically).

    Args:
        out_csv: the records file (created or appended to).
        protocol: the protocol of the rows this writer adds.
        replace: first drop the file's rows of `protocol` (a run that redoes every pair).
    """

    def __init__(self, out_csv: str | Path, protocol: str, *, replace: bool = False) -> None:
        self.path = Path(out_csv)
        self.protocol = protocol
        self.replace = replace
        self.errors_csv = errors_path(self.path)
        self.attempted: set[tuple[str, str]] = set()
        self.errors: list[ErrorRow] = []
        self.num_rows = 0

    def __enter__(self) -> RecordsWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.replace and self.path.exists():
            table = read_records_table(self.path)
            text = table[table["protocol"] != self.protocol].to_csv(index=False).encode()
            write_atomic(self.path, lambda fh: fh.write(text))
        new = not self.path.exists() or self.path.stat().st_size == 0
        self.fh = open(self.path, "a", newline="")  # noqa: SIM115  (closed in __exit__)
        self.writer = csv.writer(self.fh)
        if new:
            self.writer.writerow(RECORD_COLUMNS)
            self.fh.flush()
        return self

    def add(self, model: str, dataset: str, row: Row | None, errors: Sequence[ErrorRow]) -> None:
        """One finished pair: its record row (None when it failed) and its error rows."""
        self.attempted.add((model, dataset))
        self.errors.extend(errors)
        if row is not None:
            self.writer.writerow(row)
            self.fh.flush()
            self.num_rows += 1
        self._write_errors()

    def _write_errors(self) -> None:
        old = (pd.read_csv(self.errors_csv, dtype=str, keep_default_na=False)
               if self.errors_csv.exists() and self.errors_csv.stat().st_size else
               pd.DataFrame(columns=ERROR_COLUMNS))
        if list(old.columns) != ERROR_COLUMNS:
            raise ValueError(f"{self.errors_csv}: not a records errors table (columns "
                             f"{list(old.columns)}, expected {ERROR_COLUMNS})")
        redone = [(m, d) in self.attempted and p == self.protocol
                  for m, d, p in zip(old["model"], old["dataset"], old["protocol"], strict=True)]
        table = pd.concat([old[~np.asarray(redone, dtype=bool)],
                           pd.DataFrame(self.errors, columns=ERROR_COLUMNS)], ignore_index=True)
        text = table.to_csv(index=False).encode()
        write_atomic(self.errors_csv, lambda fh: fh.write(text))

    def __exit__(self, *exc: object) -> None:
        self.fh.close()
        self._write_errors()
        table = read_records_table(self.path).sort_values(["protocol", "model", "dataset"],
                                                          kind="stable")
        text = table.to_csv(index=False).encode()
        write_atomic(self.path, lambda fh: fh.write(text))


def format_settings(values: Iterable[tuple[str, object]]) -> str:
    """`[("C", 1.0)]` -> `"C=1.0"` (the `settings` column)."""
    return " ".join(f"{k}={v}" for k, v in values)
