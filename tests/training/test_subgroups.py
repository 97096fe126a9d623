"""Subgroup metrics: age bands, output shape, small groups refuse to report an AUC."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from dropout_risk.training.evaluation.subgroups import age_band, subgroup_metrics


def test_age_band_boundaries_and_missing():
    ages = pd.Series([18, 24.9, 25, 34, 35, 49, 50, 64.5, 65, 90, np.nan, None])
    assert age_band(ages).tolist() == [
        "<25",
        "<25",
        "25-34",
        "25-34",
        "35-49",
        "35-49",
        "50-64",
        "50-64",
        "65+",
        "65+",
        "unknown",
        "unknown",
    ]


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n_clients, n_landmarks = 400, 3
    genders = rng.choice(["female", "male"], n_clients, p=[0.6, 0.4]).astype(object)
    genders[:10] = "non-binary"  # a group of 10 clients: too small for an AUC
    genders[10:15] = None  # missing gender: its own "unknown" group
    label = rng.integers(0, 2, n_clients)
    label[15:40] = 1  # clinic03 below holds only dropouts
    clinic = rng.choice(["clinic01", "clinic02"], n_clients).astype(object)
    clinic[15:40] = "clinic03"
    frame = pd.DataFrame(
        {
            "client_id": np.repeat(np.arange(n_clients), n_landmarks),
            "gender": np.repeat(genders, n_landmarks),
            "age": np.repeat(rng.integers(18, 80, n_clients).astype(float), n_landmarks),
            "clinic_id": np.repeat(clinic, n_landmarks),
            "label": np.repeat(label, n_landmarks),
        }
    )
    frame["risk"] = np.clip(0.25 * frame["label"] + 0.75 * rng.random(len(frame)), 0, 1)
    return frame


def test_output_shape_values_and_json_ready():
    frame = _frame()
    out = subgroup_metrics(frame, by=("gender", "age_band", "clinic_id", "therapist_id"))
    assert list(out) == ["gender", "age_band", "clinic_id"]  # therapist_id absent: skipped
    assert set(out["gender"]) == {"female", "male", "non-binary", "unknown"}
    assert list(out["age_band"]) == [
        b for b in ("<25", "25-34", "35-49", "50-64", "65+") if b in set(age_band(frame["age"]))
    ]  # derived from age, in age order
    female = out["gender"]["female"]
    assert set(female) == {
        "roc_auc",
        "brier",
        "mean_predicted",
        "observed_rate",
        "n_rows",
        "n_clients",
        "n_events",
        "auc_note",
    }
    rows = frame[frame["gender"] == "female"]
    assert female["roc_auc"] == pytest.approx(roc_auc_score(rows["label"], rows["risk"]))
    assert female["observed_rate"] == pytest.approx(rows["label"].mean())
    assert female["mean_predicted"] == pytest.approx(rows["risk"].mean())
    assert female["n_clients"] == rows["client_id"].nunique() and female["n_rows"] == len(rows)
    assert female["auc_note"] is None
    assert sum(g["n_rows"] for g in out["clinic_id"].values()) == len(frame)
    json.dumps(out)  # str keys, plain Python values


def test_small_or_single_class_groups_report_nan_auc_and_say_why():
    out = subgroup_metrics(_frame(), min_clients=20)
    small = out["gender"]["non-binary"]
    assert small["n_clients"] == 10
    assert math.isnan(small["roc_auc"]) and "fewer than 20 clients" in small["auc_note"]
    assert np.isfinite(small["brier"])  # the other metrics are still reported
    one_class = out["clinic_id"]["clinic03"]
    assert one_class["n_clients"] == 25 and math.isnan(one_class["roc_auc"])
    assert one_class["auc_note"] == "one outcome class only"
    assert np.isfinite(out["clinic_id"]["clinic01"]["roc_auc"])
    # with a lower bar the small group gets its AUC
    assert np.isfinite(subgroup_metrics(_frame(), by=["gender"], min_clients=5)["gender"]["non-binary"]["roc_auc"])
