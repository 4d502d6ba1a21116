"""The one check that every id of a table is known: a clear error, or a counted drop."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd


def check_known_ids(frame: pd.DataFrame, known: Mapping[str, pd.Index], where: str, *,
                    problem: str = "is not in the {kind}s table", lines: np.ndarray | None = None,
                    line_word: str = "line", kinds: Mapping[str, str] | None = None,
                    hint: str = "", drop: bool = False, stacklevel: int = 2) -> np.ndarray:
    """Rows of `frame` whose ids are all known; a ValueError naming the first unknown one.

    The message reads `{where}, {line_word} {n}, column {col!r}: {kind} {value!r} {problem}
    ({count} such row(s){hint})`, e.g. `records.csv, line 7, column 'model': model 'x'
    is not in models.csv (2 such row(s))`.

    Args:
        frame: the rows to check.
        known: column -> the valid ids of that column, checked in this order.
        where: the file or the function the rows come from.
        problem: what is wrong with the id, `{kind}` replaced by the column's kind.
        lines: the line (or row) number of each row, for the message; None leaves it out.
        line_word: what `lines` counts (`line` in a file, `row` in a frame).
        kinds: column -> the kind of id it holds (default: the column's name).
        hint: appended inside the parentheses, e.g. how to drop such rows.
        drop: instead of raising, warn with the count of rows dropped.
        stacklevel: of the warning, counted from the caller of this function.

    Returns:
        Mask of the rows to keep [len(frame)] (all True unless `drop`).

    Raises:
        ValueError: an unknown id, unless `drop`.
    """
    keep = np.ones(len(frame), dtype=bool)
    for col, ids in known.items():
        unknown = ~frame[col].isin(ids).to_numpy()
        kind = (kinds or {}).get(col, col)
        if unknown.any() and not drop:
            i = int(np.flatnonzero(unknown)[0])
            at = f", {line_word} {lines[i]}" if lines is not None else ""
            count = f"{int(unknown.sum())} such row(s){hint}"
            raise ValueError(f"{where}{at}, column {col!r}: {kind} {frame[col].iloc[i]!r} "
                             f"{problem.format(kind=kind)} ({count})")
        keep &= ~unknown
    if not keep.all():
        names = " or ".join((kinds or {}).get(c, c) for c in known)
        warnings.warn(f"{where}: dropped {int((~keep).sum())} row(s) with an unknown {names}",
                      UserWarning, stacklevel=stacklevel + 1)
    return keep
