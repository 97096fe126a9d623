"""Feature-set comparison on simulated cohorts with a known answer, against a real MLflow store."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from dropout_risk.features.instruments import default_registry
from dropout_risk.features.spec import FeatureSpec
from dropout_risk.training.compare_settings import CompareConfig, CompareSettings
from dropout_risk.training.comparison.errors import CompareError, FeatureSetError
from dropout_risk.training.comparison.feature_sets import (
    DEFAULT_FEATURE_SETS,
    default_feature_sets,
    parse_landmarks,
    resolve_feature_sets,
)
from dropout_risk.training.comparison.report import render_markdown
from dropout_risk.training.comparison.result import CvTest, WithinLandmarkDelta
from dropout_risk.training.comparison.statistics import corrected_cv_test, holm, set_metrics
from dropout_risk.training.jobs.compare import compare
from dropout_risk.training.settings import TrainingConfig

SETS = "outcome,alliance,outcome+alliance"
LANDMARKS = [str(k) for k in range(1, 9)]


def compare_settings(store, **compare_config) -> CompareSettings:
    """Fast settings writing into ``store``: fewer bootstrap resamples (still enough for Holm with 3 pairs)."""
    config = {"bootstrap_resamples": 100, "pair_resamples": 1000, **compare_config}
    return CompareSettings(
        training=TrainingConfig(artifact_location=str(store.artifacts)), compare=CompareConfig(**config)
    )


def pair_of(report: dict, a: str, b: str) -> dict:
    """The pair {a, b}, oriented so delta_auc = AUC(a) - AUC(b)."""
    for pair in report["pairs"]:
        if (pair["a"], pair["b"]) == (a, b):
            return pair
        if (pair["a"], pair["b"]) == (b, a):
            lo, hi = pair["ci"]
            return {**pair, "a": a, "b": b, "delta_auc": -pair["delta_auc"], "ci": [-hi, -lo]}
    raise KeyError((a, b))


@pytest.fixture(scope="module")
def alliance_only(mlflow_store, cohorts, tmp_path_factory):
    """Only the alliance drives dropout (the outcome effect is switched off)."""
    root = tmp_path_factory.mktemp("alliance_only")
    paths = cohorts.files(1200, seed=3, alliance_effect=1.5, outcome_effect=0.0)
    messages: list[str] = []
    report = compare(
        paths["sessions"],
        paths["episodes"],
        compare_settings(mlflow_store),
        SETS,
        model="logistic",
        out_dir=root / "plots",
        progress=messages.append,
    )
    return report, root / "plots", messages


def test_alliance_beats_outcome_when_only_alliance_drives_dropout(alliance_only):
    report = alliance_only[0].to_json()
    sets = report["feature_sets"]
    assert sets["alliance"]["roc_auc"] > sets["outcome"]["roc_auc"] + 0.04
    pair = pair_of(report, "alliance", "outcome")
    lo, hi = pair["ci"]
    assert 0.03 < lo <= pair["delta_auc"] <= hi  # the CI excludes 0, on the alliance side
    assert pair["p_value"] < 0.01 and pair["p_value_holm"] < 0.05
    assert pair["marked"] and pair["better"] == "alliance"
    # Adding outcome features to alliance gains nothing real: never marked as better than alliance alone.
    assert pair_of(report, "outcome+alliance", "alliance")["better"] != "outcome+alliance"
    # "From which session on": the alliance set discriminates from the first sessions.
    assert sets["alliance"]["informative_from"] is not None and sets["alliance"]["informative_from"] <= 3


@pytest.mark.slow  # a false-positive check on 1,500 clients, beside the no-signal seeds below
def test_no_pair_is_marked_when_neither_score_drives_dropout(mlflow_store, cohorts):
    paths = cohorts.files(1500, seed=3, alliance_effect=0.0, outcome_effect=0.0)
    report = compare(
        paths["sessions"], paths["episodes"], compare_settings(mlflow_store), SETS, model="logistic"
    ).to_json()
    assert len(report["pairs"]) == 3
    for pair in report["pairs"]:
        assert not pair["marked"], pair
        assert pair["better"] is None and pair["p_value_holm"] >= 0.05
        assert abs(pair["delta_auc"]) < 0.03
    lo, hi = pair_of(report, "alliance", "outcome")["ci"]
    assert lo < 0 < hi


def test_report_json_keys(alliance_only):
    report = alliance_only[0].to_json()
    json.dumps(report, allow_nan=False)  # strict JSON: undefined values are null, not NaN
    assert list(report["feature_sets"]) == SETS.split(",")
    for name, metrics in report["feature_sets"].items():
        for key in ("roc_auc", "pr_auc", "brier", "calibration_slope"):
            lo, hi = metrics[f"{key}_ci"]
            assert lo <= metrics[key] <= hi, (name, key)
        assert 0 < metrics["brier"] < 0.25
        assert 0.8 < metrics["calibration_slope"] < 1.2  # recalibrated, never on its own labels
        assert list(metrics["by_landmark"]) == LANDMARKS
        for values in metrics["by_landmark"].values():
            assert {"roc_auc", "roc_auc_ci", "brier", "brier_ci", "n_rows", "n_clients"} <= set(values)
        assert metrics["columns"][0] == "landmark" and metrics["n_features"] == len(metrics["columns"])
    assert sorted(report["feature_sets"]["outcome+alliance"]["columns"]) == sorted(
        {*report["feature_sets"]["outcome"]["columns"], *report["feature_sets"]["alliance"]["columns"]}
    )
    assert [(p["a"], p["b"]) for p in report["pairs"]] == [
        ("outcome", "alliance"),
        ("outcome", "outcome+alliance"),
        ("alliance", "outcome+alliance"),
    ]
    for pair in report["pairs"]:
        assert {"a", "b", "delta_auc", "ci", "p_value", "p_value_holm", "marked", "cv_test", "by_landmark"} <= set(pair)
        assert len(pair["ci"]) == 2 and 0 < pair["p_value"] <= pair["p_value_holm"] <= 1
    assert report["design"]["calibration"] == "sigmoid" and report["design"]["folds"] == 5
    assert report["data"]["clients_evaluated"] == report["data"]["clients"]


def test_every_set_used_the_same_folds(alliance_only):
    report = alliance_only[0].to_json()
    digests = {m["fold_digest"] for m in report["feature_sets"].values()}
    assert digests == {report["design"]["fold_digest"]}
    assert len(report["design"]["fold_clients"]) == 5
    assert sum(report["design"]["fold_clients"]) == report["data"]["clients_evaluated"]
    client = MlflowClient()
    children = client.search_runs(
        [client.get_run(report["run_id"]).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{report['run_id']}'",
    )
    assert {run.data.params["fold_digest"] for run in children} == digests
    assert {run.data.params["seed"] for run in children} == {"0"}


def test_mlflow_parent_and_one_nested_run_per_set(alliance_only):
    result, plots, _ = alliance_only
    report = result.to_json()
    client = MlflowClient()
    parent = client.get_run(report["run_id"])
    assert parent.data.tags["kind"] == "feature_set_comparison"
    assert parent.data.params["feature_sets"] == SETS
    assert parent.data.metrics["alliance.roc_auc"] == pytest.approx(report["feature_sets"]["alliance"]["roc_auc"])
    assert "delta_auc.outcome.vs.alliance.p_value_holm" in parent.data.metrics
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"report.json", "report.md", "comparison.md", "comparison.csv", "plots"} <= artifacts
    parent_plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {"plots/roc.png", "plots/auc_by_landmark.png"} <= parent_plots

    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert sorted(run.data.tags["feature_set"] for run in children) == sorted(SETS.split(","))
    for run in children:
        name = run.data.tags["feature_set"]
        assert run.info.run_id == report["feature_sets"][name]["run_id"]
        assert run.data.metrics["roc_auc"] == pytest.approx(report["feature_sets"][name]["roc_auc"])
        assert "roc_auc_ci_lo" in run.data.metrics and "l1_roc_auc" in run.data.metrics
        assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"feature_set.json", "plots"}
    assert sorted(p.name for p in plots.iterdir()) == [
        "auc_by_landmark.png",
        "roc.png",
        "roc_alliance.png",
        "roc_outcome.png",
        "roc_outcome_alliance.png",
    ]


def test_progress_and_markdown(alliance_only):
    report, _, messages = alliance_only
    assert messages[0] == "validating data"
    assert sum(m.startswith("fitted ") for m in messages) == 3 * 5  # sets x folds
    text = render_markdown(report)
    for heading in (
        "## Design",
        "## Feature sets: within-session and pooled",
        "## ROC AUC by landmark session",
        "## Pairs of feature sets",
        "Holm",
    ):
        assert heading in text
    assert "**yes: alliance better**" in text


# --- pure helpers ---------------------------------------------------------------------------


def test_parse_landmarks():
    assert parse_landmarks("1-6") == (1, 2, 3, 4, 5, 6)
    assert parse_landmarks("3") == (3,)
    assert parse_landmarks("1,2,5") == (1, 2, 5)
    assert parse_landmarks("5, 1-2") == (1, 2, 5)
    assert parse_landmarks(None) is None
    for bad in ("6-1", "0", "a", "1-", "", "99"):
        with pytest.raises(CompareError):
            parse_landmarks(bad)


def test_holm_adjustment():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, float("nan")]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_corrected_cv_test():
    same = corrected_cv_test([0.0] * 5, 0.25)
    assert same.p_value == 1.0 and same.ci == (0.0, 0.0)
    shifted = corrected_cv_test([0.05, 0.06, 0.04, 0.05, 0.055], 0.25)
    assert shifted.p_value < 0.01 and shifted.ci[0] > 0 and shifted.df == 4


def _spec(covariates: bool = True, alliance: bool = True) -> FeatureSpec:
    registry = default_registry()
    return FeatureSpec(
        max_landmark=8,
        off_track_z=1.0,
        instruments=(registry["ors"], registry["srs"]) if alliance else (registry["ors"],),
        numeric_covariates=("age",) if covariates else (),
        categorical_covariates={"gender": ("F", "M")} if covariates else {},
    )


def test_resolve_feature_sets_groups_config_sets_and_explicit_features():
    defined = {"srs_core": ["srs_current", "srs_min"], "mixed": ["outcome", "srs_mean"]}
    sets, warnings = resolve_feature_sets(
        ["outcome+alliance", "srs_core", "mixed", *DEFAULT_FEATURE_SETS[:1]], _spec(), defined
    )
    assert not warnings
    by_name = {s.name: s for s in sets}
    assert by_name["srs_core"].columns == ("landmark", "srs_current", "srs_min")
    assert by_name["mixed"].groups == ("outcome",) and by_name["mixed"].features == ("srs_mean",)
    # A group brings the model's one feature per concept (issue 16); a named column comes as named.
    assert by_name["mixed"].columns == ("landmark", "ors_expected_dev", "srs_mean")
    assert by_name["mixed"].directions == {"landmark": 0, "ors_expected_dev": -1, "srs_mean": -1}
    assert by_name["srs_core"].directions == {"landmark": 0, "srs_current": -1, "srs_min": 0}
    assert by_name["outcome+alliance"].groups == ("outcome", "alliance")


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["outcome", "aliance"], "'aliance'"),
        (["outcome+alliance+atendance"], "'atendance'"),
        (["outcome", "outcome"], "listed twice"),
        (["outcome+"], "empty part"),
        (["bad_set"], "'srs_latest'"),
    ],
)
def test_resolve_feature_sets_names_the_bad_name(names, message):
    with pytest.raises(FeatureSetError, match=message):
        resolve_feature_sets(names, _spec(), {"bad_set": ["alliance", "srs_latest"]})


def test_a_set_with_nothing_in_the_data_is_refused_and_an_empty_group_warned():
    spec = _spec(covariates=False)
    with pytest.raises(FeatureSetError, match="no features in these data"):
        resolve_feature_sets(["covariates"], spec, {})
    _, warnings = resolve_feature_sets(["alliance+covariates"], spec, {})
    assert warnings == ["feature set 'alliance+covariates': group 'covariates' has no columns in these data"]


def test_config_set_names_are_checked():
    for bad in ({"a+b": ["outcome"]}, {"outcome": ["alliance"]}, {"x": []}, {"a,b": ["outcome"]}):
        with pytest.raises(ValueError):
            CompareConfig(feature_sets=bad)
    with pytest.raises(ValueError):
        CompareConfig(n_jobs=0)


def test_bad_arguments_stop_before_any_run(mlflow_store, cohorts):
    paths = cohorts.files(200, seed=1)
    settings = compare_settings(mlflow_store, experiment="compare-rejects")
    for kwargs, message in (
        ({"model": "forest"}, "--model"),
        ({"landmarks": "9-2"}, "backwards"),
        ({"feature_sets": "outcome,nonsense"}, "'nonsense'"),
    ):
        with pytest.raises(CompareError, match=message):
            compare(paths["sessions"], paths["episodes"], settings, **{"feature_sets": "outcome", **kwargs})
    assert MlflowClient().get_experiment_by_name("compare-rejects") is None


def test_default_sets_start_with_landmark_and_skip_groups_the_data_lack():
    names, notes = default_feature_sets(_spec())
    assert names == list(DEFAULT_FEATURE_SETS) and names[0] == "landmark" and not notes
    names, notes = default_feature_sets(_spec(covariates=False, alliance=False))
    assert names == ["landmark", "outcome", "outcome+attendance"]
    assert notes == [
        "default feature sets: skipped group 'alliance' (no alliance features in these data)",
        "default feature sets: skipped group 'covariates' (no covariates features in these data)",
    ]
    landmark_only = resolve_feature_sets(["landmark"], _spec(), {})[0][0]
    assert landmark_only.columns == ("landmark",)


def _delta(ci: tuple[float, float], holm_p: float, cv_ci: tuple[float, float]) -> WithinLandmarkDelta:
    cv = CvTest(mean_delta_auc=sum(cv_ci) / 2, ci=cv_ci, p_value=None, df=4, n_folds=5)
    return WithinLandmarkDelta(
        delta_auc=sum(ci) / 2, ci=ci, p_value=holm_p / 3, p_value_holm=holm_p, cv_test=cv, landmarks=(1, 2)
    )


def test_a_pair_is_marked_only_when_bootstrap_holm_and_refit_aware_test_all_agree():
    assert _delta((0.01, 0.05), 0.01, (0.005, 0.06)).marked
    assert _delta((-0.05, -0.01), 0.01, (-0.06, -0.002)).marked
    assert not _delta((0.01, 0.05), 0.01, (-0.01, 0.06)).marked  # the refitted folds disagree
    assert not _delta((0.01, 0.05), 0.01, (-0.06, -0.01)).marked  # ... or point the other way
    assert not _delta((0.01, 0.05), 0.08, (0.005, 0.06)).marked  # Holm
    assert not _delta((-0.01, 0.05), 0.01, (0.005, 0.06)).marked  # the bootstrap CI


def test_informative_from_counts_only_evaluable_landmarks():
    """Only completers reach the last session (as in trials): that must not turn "from session 1" into "never"."""
    rng = np.random.default_rng(0)
    frames = []
    for k in (1, 2, 3):
        label = rng.random(300) < 0.3
        risk = np.clip(0.3 + 0.3 * label + rng.normal(0, 0.15, 300), 0.01, 0.99)
        frames.append(
            pd.DataFrame({"client_id": np.arange(300), "landmark": k, "label": label.astype(int), "risk": risk})
        )
    completers = frames[-1][frames[-1]["label"] == 0].assign(landmark=4)
    frame = pd.concat([*frames, completers], ignore_index=True)
    one_fold = frame.rename(columns={"landmark": "session_number"}).assign(repeat=0, fold=0)
    metrics = set_metrics(frame, one_fold, n_resamples=100, seed=0, min_class_clients=10)
    assert math.isnan(metrics.by_landmark["4"].roc_auc)
    assert metrics.informative_from == 1
    assert metrics.within_landmark.landmarks == (1, 2, 3)
    assert [e.landmark for e in metrics.within_landmark.excluded] == [4]
    lo, hi = metrics.within_landmark.ci
    assert 0.5 < lo <= metrics.within_landmark.auc <= hi


@pytest.fixture(scope="module")
def outcome_only(mlflow_store, cohorts):
    """Default sets on data with no alliance instrument, 600 clients (small data)."""
    paths = cohorts.files(600, seed=5, alliance="none")
    return compare(paths["sessions"], paths["episodes"], compare_settings(mlflow_store))


def test_default_sets_run_on_outcome_only_data_and_say_what_they_skipped(outcome_only):
    report = outcome_only.to_json()
    assert list(report["feature_sets"]) == ["landmark", "outcome", "outcome+attendance+covariates"]
    assert "default feature sets: skipped group 'alliance' (no alliance features in these data)" in report["warnings"]
    assert report["model"] == "logistic" and "below evaluation.small_data_clients (1,000)" in report["model_reason"]
    landmark = report["feature_sets"]["landmark"]
    assert landmark["columns"] == ["landmark"]
    # A risk by session alone ranks no one within a session: it differs between folds only (refitted models),
    # and clients are compared within the fold that scored them, so the figure is exactly 0.5.
    assert landmark["within_landmark_auc"] == pytest.approx(0.5, abs=1e-12)
    assert landmark["within_landmark_auc_ci"] == pytest.approx([0.5, 0.5], abs=1e-12)
    assert landmark["roc_auc"] > 0.55  # ... but the pooled AUC credits it with the session-number effect
    for metrics in report["feature_sets"].values():
        lo, hi = metrics["within_landmark_auc_ci"]
        assert lo <= metrics["within_landmark_auc"] <= hi
        assert metrics["evaluable_landmarks"] == list(range(1, 9))
    for pair in report["pairs"]:
        assert {"delta_auc", "ci", "p_value_holm", "cv_test", "cv_test_agrees"} <= set(pair["within_landmark"])
    assert report["design"]["min_class_clients"] == 10 and "refit-aware" in report["design"]["marking_rule"]
    text = render_markdown(outcome_only)
    assert "within-session AUC" in text and "incl. session-number effect" in text


@pytest.mark.slow  # issue 11 acceptance: compare on no-signal cohorts
@pytest.mark.parametrize("seed", [1, 2])
def test_no_pair_is_marked_on_a_cohort_without_signal(mlflow_store, cohorts, seed):
    """Only the session number drives dropout: whatever the default sets add, none may be marked better."""
    paths = cohorts.files(600, seed=seed, no_signal=True)
    result = compare(paths["sessions"], paths["episodes"], compare_settings(mlflow_store))
    assert result.model == "logistic" and len(result.pairs) == 10
    assert [p for p in result.pairs if p.marked] == []
    for name, feature_set in result.feature_sets.items():
        assert feature_set.metrics.within_landmark.ci[0] <= 0.5, name  # no set claims a within-session signal
        assert feature_set.metrics.informative_from is None, name
