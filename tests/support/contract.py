"""Data-contract inputs for tests: a small sessions file as a CSV reader hands it over (every cell text)."""

from __future__ import annotations

import pandas as pd


def text_sessions(overrides: dict | None = None) -> pd.DataFrame:
    """Two clients as text, like a CSV read: A has 3 sessions (rows 1-3), B has 2 (rows 4-5).

    ``overrides`` maps (row index, column) to the text that cell holds instead.
    """
    frame = pd.DataFrame(
        {
            "client_id": ["A", "A", "A", "B", "B"],
            "session_number": ["1", "2", "3", "1", "2"],
            "session_date": ["2024-01-01", "2024-01-08", "2024-01-15", "2024-02-01", "2024-02-08"],
            "missed_since_last": ["0", "1", "", "0", "0"],
            "ors": ["18.5", "20", "", "30", "31.2"],
            "srs": ["36", "38.1", "40", "", "35"],
        }
    )
    for (row, column), value in (overrides or {}).items():
        frame.loc[row, column] = value
    return frame
