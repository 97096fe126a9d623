"""Pass 1 of the data contract (features.contract): cells, as text (CSV) or typed (Parquet), to numbers and dates.

Each parser returns the parsed column and masks of the cells that were given but broke a rule; the
contract turns the masks into problems with their rows. Blank cells are missing, never wrong here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dropout_risk.features.session_rules import FIRST_DATE, LAST_DATE


def is_untyped_text(column: pd.Series) -> bool:
    """Cells as a reader leaves text: object (pandas < 3) or pandas 3's ``str`` (missing is NaN).

    Not the nullable ``string`` dtype (missing is ``pd.NA``): that marks a column already judged to be
    text, as the Spark engine marks one that is text over the whole file, and it is never re-typed.
    """
    return column.dtype == object or column.dtype == "str"


def blank_to_na(column: pd.Series) -> pd.Series:
    if column.dtype == object or pd.api.types.is_string_dtype(column):
        stripped = column.astype("string").str.strip()
        return stripped.mask(stripped == "")
    return column


def parse_numeric(column: pd.Series, *, integer: bool) -> tuple[pd.Series, pd.Series]:
    """(parsed float series, mask of cells that were given but are not valid numbers)."""
    given = blank_to_na(column)
    if pd.api.types.is_bool_dtype(given):
        # A typed (Parquet) true/false column is not a score of 1/0: every given cell is wrong.
        bad = given.notna().astype(bool)
        return pd.Series(np.nan, index=column.index, dtype="float64"), bad
    parsed = pd.to_numeric(given, errors="coerce").astype("float64")
    bad = given.notna() & (parsed.isna() | ~np.isfinite(parsed.fillna(0)))
    if integer:
        bad |= parsed.notna() & (parsed != np.floor(parsed))
    return parsed.where(~bad), bad


def parse_dates(column: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(parsed dates, cells that are not ISO dates, dates outside FIRST_DATE-LAST_DATE).

    The range is checked before the cast to nanoseconds, which raises (printing the date) beyond 1677-2262.
    """
    if pd.api.types.is_datetime64_any_dtype(column):
        parsed = column.dt.tz_localize(None) if getattr(column.dt, "tz", None) else column
        bad = pd.Series(False, index=column.index)
    else:
        given = blank_to_na(column.map(lambda v: v.isoformat() if hasattr(v, "isoformat") else v))
        # ISO dates only: "03/04/2024" is ambiguous between clinics, so it is rejected, not guessed.
        parsed = pd.to_datetime(given.str.slice(0, 10), format="%Y-%m-%d", errors="coerce")
        bad = given.notna() & (parsed.isna() | (given.str.len() > 10) & ~given.str.slice(10, 11).isin(["T", " "]))
    day = parsed.dt.normalize()
    outside = ~bad & parsed.notna() & ((day < pd.Timestamp(FIRST_DATE)) | (day > pd.Timestamp(LAST_DATE)))
    return parsed.where(~bad & ~outside).astype("datetime64[ns]"), bad, outside
