"""Reading a clinic's files (CSV or Parquet, by extension) into the data contract.

Errors name the file and what is wrong with it, never a cell's content: a
decoding error reports the line, not the bytes.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pandas as pd

from dropout_risk.features.contract import ValidationResult, validate_contract
from dropout_risk.features.instruments import InstrumentRegistry
from dropout_risk.features.private_files import private_file

CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")


class DataFileError(ValueError):
    """A file that cannot be read as a table at all."""


def _first_undecodable_line(path: Path) -> int:
    # The reader's own error counts from its buffer, not the file: decode the file to locate it.
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return data[: exc.start].count(b"\n") + 1
    return 1


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV (all cells as text, blanks as missing) or a Parquet file (typed)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DataFileError(f"{path}: file not found")
    if suffix in PARQUET_SUFFIXES:
        try:
            return pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types; the message names no cell content
            raise DataFileError(f"{path}: not a readable Parquet file ({type(exc).__name__})") from None
    if suffix not in CSV_SUFFIXES:
        raise DataFileError(f"{path}: unsupported file type {suffix!r} (use .csv, .parquet or .pq)")
    if path.stat().st_size == 0:
        raise DataFileError(f"{path}: file is empty (expected a header row)")
    try:
        # Text first, types later: validation reports each unparsable cell by row instead of
        # letting the reader guess a dtype for the whole column.
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], encoding="utf-8", engine="c")
    except UnicodeDecodeError:
        raise DataFileError(f"{path}: line {_first_undecodable_line(path)} is not valid UTF-8 text") from None
    except pd.errors.EmptyDataError:
        raise DataFileError(f"{path}: file is empty (expected a header row)") from None
    except (pd.errors.ParserError, csv.Error) as exc:
        # pandas' tokenizer message names line numbers and field counts only.
        raise DataFileError(f"{path}: not a well-formed CSV file: {str(exc).strip()}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    path = private_file(path)  # feature rows and scores are health data: 0600, a new folder 0700
    if path.suffix.lower() in PARQUET_SUFFIXES:
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def load_contract(sessions_path: Path, episodes_path: Path, registry: InstrumentRegistry) -> ValidationResult:
    """Read and validate both files; problems carry the file names a user gave."""
    result = validate_contract(read_table(sessions_path), read_table(episodes_path), registry)
    names = {"sessions": Path(sessions_path).name, "episodes": Path(episodes_path).name}
    result.problems = [replace(p, file=names[p.file]) for p in result.problems]
    return result


def placeholder_episodes(sessions: pd.DataFrame) -> pd.DataFrame:
    """Episodes for scoring without an episodes file: every client ongoing, covariates unknown."""
    return pd.DataFrame({"client_id": pd.unique(sessions["client_id"].dropna()), "status": "ongoing"})
