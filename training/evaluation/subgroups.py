"""Performance by subgroup (gender, age band, clinic) with fairlearn's ``MetricFrame``.

Each group gets ROC AUC, Brier score, mean predicted risk, observed dropout rate and its size
(rows, clients, events). A group with fewer than ``min_clients`` clients, or with one outcome
class only, reports a NaN AUC and says why in ``auc_note``: an AUC from a handful of clients is
noise, and publishing it invites over-reading. The other metrics are reported regardless.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame

from dropout_risk.training.evaluation.metrics import as_labels, as_scores, brier, roc_auc

AGE_BANDS = ("<25", "25-34", "35-49", "50-64", "65+")
_AGE_EDGES = (-np.inf, 25, 35, 50, 65, np.inf)
UNKNOWN = "unknown"
DEFAULT_BY = ("gender", "age_band", "clinic_id")


def age_band(age: pd.Series) -> pd.Series:
    """Age in years -> "<25", "25-34", "35-49", "50-64", "65+"; missing or non-numeric -> "unknown"."""
    years = pd.to_numeric(pd.Series(age), errors="coerce")
    bands = pd.cut(years, bins=_AGE_EDGES, labels=AGE_BANDS, right=False)
    return bands.astype(object).where(bands.notna(), UNKNOWN).rename(getattr(age, "name", None))


def _group_column(frame: pd.DataFrame, by: str) -> pd.Series | None:
    if by in frame.columns:
        column = frame[by]
    elif by == "age_band" and "age" in frame.columns:
        column = age_band(frame["age"])
    else:
        return None
    # Group labels as text (JSON keys), missing values as their own group.
    return column.astype(object).where(column.notna(), UNKNOWN).map(str)


def _n_rows(y_true, y_pred) -> float:
    return float(len(y_true))


def _n_events(y_true, y_pred) -> float:
    return float(np.sum(y_true))


def _n_clients(y_true, y_pred, clients) -> float:
    return float(pd.unique(np.asarray(clients)).size)


def _mean(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()) if values.size else math.nan


METRICS = {
    "roc_auc": roc_auc,
    "brier": brier,
    "mean_predicted": lambda y_true, y_pred: _mean(y_pred),
    "observed_rate": lambda y_true, y_pred: _mean(y_true),
    "n_rows": _n_rows,
    "n_clients": _n_clients,
    "n_events": _n_events,
}
_COUNTS = ("n_rows", "n_clients", "n_events")


def _group_values(row: pd.Series, min_clients: int) -> dict[str, float | int | str | None]:
    """One group's metrics; its AUC is NaN, and ``auc_note`` says why, when too few clients or one class."""
    metrics = {name: float(row[name]) for name in METRICS}
    counts = {name: int(metrics[name]) for name in _COUNTS}
    note = None
    if counts["n_clients"] < min_clients:
        note = f"fewer than {min_clients} clients"
    elif counts["n_events"] in (0, counts["n_rows"]):
        note = "one outcome class only"
    if note is not None:
        metrics["roc_auc"] = math.nan
    return {**metrics, **counts, "auc_note": note}


def subgroup_metrics(
    frame: pd.DataFrame,
    *,
    by: Sequence[str] = DEFAULT_BY,
    score: str = "risk",
    label: str = "label",
    client: str = "client_id",
    min_clients: int = 20,
) -> dict:
    """``{by: {group: {metric: value}}}`` for each grouping column present in ``frame``.

    "age_band" is derived from an "age" column when the frame has no "age_band". Grouping
    columns that are absent are skipped. Without a client column each row counts as a client.
    Every group also has "auc_note": None, or why its AUC is NaN.
    """
    if isinstance(by, str):
        by = (by,)
    missing = [c for c in (score, label) if c not in frame.columns]
    if missing:
        raise ValueError(f"subgroup_metrics needs column(s) {missing}")
    y = as_labels(frame[label])
    p = as_scores(frame[score])
    clients = frame[client].to_numpy() if client in frame.columns else np.arange(len(frame))
    out: dict[str, dict[str, dict]] = {}
    for column in by:
        groups = _group_column(frame, column)
        if groups is None:
            continue
        if len(frame) == 0:
            out[column] = {}
            continue
        metric_frame = MetricFrame(
            metrics=METRICS,
            y_true=y,
            y_pred=p,
            sensitive_features=groups.rename(column),
            sample_params={"n_clients": {"clients": clients}},
        )
        table = metric_frame.by_group
        result = {str(group): _group_values(row, min_clients) for group, row in table.iterrows()}
        if column == "age_band":  # bands in age order rather than text order ("<25" last)
            rank = {band: i for i, band in enumerate((*AGE_BANDS, UNKNOWN))}
            result = dict(sorted(result.items(), key=lambda item: rank.get(item[0], len(rank))))
        out[column] = result
    return out
