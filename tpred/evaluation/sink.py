"""Predictions written as they are made: a CSV appended chunk by chunk, or a Parquet file.

`evaluate(..., sink=PredictionsWriter(path))` hands each (method, protocol, seed) frame to the
writer as soon as its folds are predicted, so a run over a large zoo never holds every method's
and seed's predictions at once (with `keep_predictions=False`). The file's rows and columns are
the same as `RunResult.predictions` would hold, in the same order.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import pandas as pd

#: columns of predictions.csv, in order
PREDICTION_COLUMNS = ["method", "protocol", "seed", "fold", "model", "dataset", "true",
                      "predicted"]


class PredictionsWriter:
    """Append prediction frames to `path`: CSV (header once), or Parquet when the name ends in
    `.parquet` (one row group per frame; needs `pyarrow`).

    Use as a context manager, or call `close()`; the file is created (empty, with the header
    for CSV) on the first `write` or on `close`, whichever comes first.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.parquet = self.path.suffix == ".parquet"
        if self.parquet:
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise ImportError(f"PredictionsWriter: writing {self.path} needs pyarrow "
                                  f"(pip install pyarrow), or a .csv name") from None
        self.rows = 0
        self._started = False
        self._writer = None   # pyarrow.parquet.ParquetWriter once the schema is known

    def write(self, frame: pd.DataFrame) -> None:
        """Append `frame` (its PREDICTION_COLUMNS, in that order)."""
        frame = frame[PREDICTION_COLUMNS]
        if self.parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._writer is None:
                self._writer = pq.ParquetWriter(self.path, table.schema)
            self._writer.write_table(table.cast(self._writer.schema))
        else:
            frame.to_csv(self.path, mode="a" if self._started else "w",
                         header=not self._started, index=False)
        self._started = True
        self.rows += len(frame)

    def close(self) -> None:
        """Finish the file (an empty one with the header when nothing was written)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        elif not self._started:
            empty = pd.DataFrame({c: pd.Series(dtype="float64" if c in ("true", "predicted")
                                               else "int64" if c in ("seed", "fold")
                                               else "object") for c in PREDICTION_COLUMNS})
            if self.parquet:
                empty.to_parquet(self.path, index=False)
            else:
                empty.to_csv(self.path, index=False)
        self._started = True

    def __enter__(self) -> PredictionsWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
