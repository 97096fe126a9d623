"""DropoutRiskModel: from feature rows or raw sessions to calibrated, explained risk; through MLflow and back."""

from __future__ import annotations

import pickle
import warnings
from dataclasses import replace

import cloudpickle
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.types import DataType

from dropout_risk.models import extract as extraction
from dropout_risk.models.estimators import make_candidate
from dropout_risk.models.extract import ArtifactMismatchError
from dropout_risk.models.packaged import BIAS, CONTRIBUTION_PREFIX, RISK, DropoutRiskModel
from dropout_risk.models.registry import (
    MODEL_NAME,
    load_model,
    load_scorer,
    log_model,
    model_uri,
    set_alias,
    version_for_alias,
)
from tests.support.clinic import landmark_calibrator

KINDS = ("logistic", "lightgbm")


def logit(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    return np.log(p) - np.log1p(-p)


def build_model(clinic, kind: str) -> DropoutRiskModel:
    """Estimator fitted on half the clients, Platt calibrator on the other half's predictions."""
    train = clinic.train
    clients = np.sort(train["client_id"].unique())
    fit_rows = train["client_id"].isin(clients[::2]).to_numpy()
    columns = clinic.spec.feature_columns()
    params = {"n_estimators": 150} if kind == "lightgbm" else {}
    estimator = make_candidate(kind, train, columns, **params).fit(train[fit_rows], clinic.y[fit_rows])
    raw = estimator.predict_proba(train[~fit_rows])[:, 1]
    calibrator = landmark_calibrator("sigmoid", raw, clinic.y[~fit_rows], train[~fit_rows])
    return DropoutRiskModel(
        spec=clinic.spec,
        trajectories=clinic.trajectories,
        kind=kind,
        estimator=estimator,
        calibrator=calibrator,
        columns=columns,
        metadata={"test": True},
    ).fit_reference(train)


@pytest.fixture(scope="module")
def models(clinic) -> dict[str, DropoutRiskModel]:
    return {kind: build_model(clinic, kind) for kind in KINDS}


@pytest.fixture(params=KINDS)
def model(request, models) -> DropoutRiskModel:
    return models[request.param]


def as_json_records(features: pd.DataFrame, spec, drop: tuple[str, ...] = ()) -> pd.DataFrame:
    """Feature rows as a client would POST them: text categories, numbers as text or int, no NaN, some absent."""
    records = []
    for row in features[spec.feature_columns()].to_dict(orient="records"):
        record = {}
        for i, (name, value) in enumerate(row.items()):
            if name in drop:
                continue
            if value is None or (isinstance(value, float) and np.isnan(value)):
                record[name] = None
            elif name in spec.categorical_covariates:
                record[name] = str(value)
            elif float(value).is_integer():
                record[name] = int(value)
            elif i % 2:
                record[name] = repr(float(value))  # numbers as strings
            else:
                record[name] = float(value)
        records.append(record)
    return pd.DataFrame.from_records(records)


# --- feature rows to risk -------------------------------------------------------------------------


def test_predict_features_gives_probabilities(clinic, model):
    risk = model.predict_features(clinic.features)
    assert risk.shape == (len(clinic.features),)
    assert np.isfinite(risk).all() and ((risk > 0) & (risk < 1)).all()
    assert risk.std() > 0
    assert model.predict_features(clinic.features.head(0)).shape == (0,)


def test_predict_features_is_the_calibrated_estimator_output(clinic, model):
    X = clinic.features
    raw = model.estimator.predict_proba(model.prepare(X))[:, 1]
    expected = model.calibrator.transform(raw, X["landmark"].to_numpy(dtype=float))
    np.testing.assert_array_equal(model.predict_features(X), expected)


def test_pyfunc_predict_returns_risk_only_by_default(clinic, model):
    X = clinic.features.head(30)
    out = model.predict(None, X)
    assert list(out.columns) == [RISK]
    assert out.index.equals(X.index)
    np.testing.assert_array_equal(out[RISK].to_numpy(), model.predict_features(X))
    assert list(model.predict(None, X, params={"contributions": False}).columns) == [RISK]


def test_contributions_add_up_to_the_calibrated_log_odds(clinic, model):
    X = clinic.features.sample(300, random_state=0)  # a shuffled, non-range index
    out = model.predict(None, X, params={"contributions": True})
    spec_columns = [f"{CONTRIBUTION_PREFIX}{c}" for c in model.spec.feature_columns()]
    assert list(out.columns) == [RISK, *spec_columns, BIAS]
    assert out.index.equals(X.index)
    np.testing.assert_array_equal(out[RISK].to_numpy(), model.predict_features(X))
    platt_intercept = model.calibrator.logit_intercepts(X["landmark"], len(X))  # each row's landmark's
    assert np.unique(platt_intercept).size > 1
    total = out[[*spec_columns, BIAS]].sum(axis=1).to_numpy() + platt_intercept
    np.testing.assert_allclose(total, logit(out[RISK]), rtol=0, atol=1e-6)
    # The calibrator really rescales (so the test covers the slope), and features carry the signal.
    assert abs(model.calibrator.logit_slope - 1) > 0.01
    assert (out[spec_columns].abs().max() > 0).sum() > 5


def test_pyfunc_predict_keeps_rows_aligned_with_a_repeated_index(clinic, model):
    X = clinic.features.head(6).set_axis([3, 3, 1, 1, 0, 0])
    out = model.predict(None, X, params={"contributions": True})
    assert len(out) == len(X) and list(out.index) == list(X.index)
    np.testing.assert_array_equal(out[RISK].to_numpy(), model.predict_features(X))
    total = out.drop(columns=RISK).sum(axis=1).to_numpy() + model.calibrator.logit_intercepts(X["landmark"], len(X))
    np.testing.assert_allclose(total, logit(out[RISK]), rtol=0, atol=1e-6)


def test_contributions_need_an_explainable_kind(clinic, models):
    odd = pickle.loads(pickle.dumps(models["logistic"]))
    odd.kind = "clinical_rule"
    with pytest.raises(ValueError, match="no per-feature contributions"):
        odd.contributions(clinic.features.head(3))


def test_prepare_gives_training_dtypes_and_columns(clinic, model):
    prepared = model.prepare(clinic.features.head(20))
    assert list(prepared.columns) == clinic.spec.feature_columns()
    for column in prepared.columns:
        if column in clinic.spec.categorical_covariates:
            assert list(prepared[column].cat.categories) == list(clinic.spec.categorical_covariates[column])
        else:
            assert prepared[column].dtype == np.float64


def test_prepare_accepts_json_like_input(clinic, model):
    X = clinic.features.sample(120, random_state=1).reset_index(drop=True)
    absent = ("srs_mean", "ors_slope", "age")
    records = as_json_records(X, clinic.spec, drop=absent)
    kinds = records.drop(columns="gender").apply(lambda c: set(c.dropna().map(type)))
    assert any(k >= {str, int} or k >= {str, float} for k in kinds)  # columns really mix text and numbers
    typed = X.assign(**{c: np.nan for c in absent})
    np.testing.assert_array_equal(model.predict_features(records), model.predict_features(typed))
    # Nothing was silently lost: the JSON-like rows prepare to exactly the typed values.
    pd.testing.assert_frame_equal(model.prepare(records), model.prepare(typed))


def test_unknown_category_and_garbage_numbers_score_as_missing(clinic, model):
    X = clinic.features.head(10).reset_index(drop=True)
    records = as_json_records(X, clinic.spec).assign(gender="nonbinary", ors_current="n/a")
    missing = X.assign(gender=None, ors_current=np.nan)
    np.testing.assert_array_equal(model.predict_features(records), model.predict_features(missing))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pandas deprecates unseen values inside pd.Categorical: must not rely on it
        prepared = model.prepare(records)
    assert prepared["gender"].isna().all()


# --- history to risk ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def histories(clinic, models) -> dict[str, pd.DataFrame]:
    return {kind: models[kind].score_history(clinic.sessions, clinic.episodes) for kind in KINDS}


@pytest.fixture
def history(request, histories, model) -> pd.DataFrame:
    return histories[model.kind]


def test_score_history_gives_one_row_per_session(clinic, model, history):
    assert list(history.columns) == ["client_id", "session_number", "landmark", "risk"]
    assert len(history) == len(clinic.sessions)
    np.testing.assert_array_equal(history["client_id"].to_numpy(), clinic.sessions["client_id"].to_numpy())
    np.testing.assert_array_equal(history["session_number"].to_numpy(), clinic.sessions["session_number"].to_numpy())
    assert history["risk"].notna().all()
    np.testing.assert_array_equal(history["landmark"], np.minimum(history["session_number"], clinic.spec.max_landmark))


def test_score_history_matches_the_landmark_rows(clinic, model, history):
    rows = clinic.features.assign(expected=model.predict_features(clinic.features))
    merged = history.merge(
        rows[["client_id", "landmark", "expected"]], on=["client_id", "landmark"], validate="many_to_one"
    )
    assert len(merged) == len(history)
    np.testing.assert_array_equal(merged["risk"].to_numpy(), merged["expected"].to_numpy())


def test_sessions_past_the_last_landmark_carry_its_risk(clinic, history):
    k = clinic.spec.max_landmark
    late = history[history["session_number"] > k]
    assert late["client_id"].nunique() >= 5, "the simulated clinic should have clients past the last landmark"
    at_k = history[history["session_number"] == k].set_index("client_id")["risk"]
    np.testing.assert_array_equal(late["risk"].to_numpy(), at_k.loc[late["client_id"]].to_numpy())
    assert (late["landmark"] == k).all()


def pick_clients(clinic) -> list[str]:
    sessions = clinic.sessions
    counts = sessions.groupby("client_id")["session_number"].max()
    longest = counts.idxmax()
    single = counts[counts == 1].index[0]
    typical = counts[counts.between(3, clinic.spec.max_landmark)].index[0]
    return [longest, single, typical]


@pytest.mark.parametrize("with_episodes", [True, False])
def test_one_clients_history_scores_as_in_the_whole_cohort(clinic, model, with_episodes):
    """Serving scores one client at a time; it must agree with batch scoring of everybody."""
    episodes = clinic.episodes if with_episodes else None
    whole = model.score_history(clinic.sessions, episodes)
    for client in pick_clients(clinic):
        own_sessions = clinic.sessions[clinic.sessions["client_id"] == client]
        own_episodes = clinic.episodes[clinic.episodes["client_id"] == client] if with_episodes else None
        alone = model.score_history(own_sessions, own_episodes)
        expected = whole[whole["client_id"] == client].reset_index(drop=True)
        assert len(alone) == len(own_sessions)
        np.testing.assert_array_equal(alone["session_number"].to_numpy(), expected["session_number"].to_numpy())
        np.testing.assert_allclose(alone["risk"].to_numpy(), expected["risk"].to_numpy(), rtol=0, atol=1e-12)


def test_covariates_come_from_episodes_when_given(clinic, model):
    client = pick_clients(clinic)[0]
    own = clinic.sessions[clinic.sessions["client_id"] == client]
    with_covariates = model.score_history(own, clinic.episodes)
    without = model.score_history(own)
    assert not np.array_equal(with_covariates["risk"].to_numpy(), without["risk"].to_numpy())


def test_score_history_without_an_instrument_column(clinic, model):
    client = pick_clients(clinic)[2]
    own = clinic.sessions[clinic.sessions["client_id"] == client].drop(columns=["srs"])
    scored = model.score_history(own)
    assert len(scored) == len(own) and scored["risk"].between(0, 1).all()


def test_score_history_of_shuffled_sessions_is_row_aligned(clinic, model):
    own = clinic.sessions[clinic.sessions["client_id"].isin(pick_clients(clinic))]
    shuffled = own.sample(frac=1.0, random_state=4)
    straight = model.score_history(own, clinic.episodes).set_index(["client_id", "session_number"])["risk"]
    scored = model.score_history(shuffled, clinic.episodes)
    np.testing.assert_array_equal(scored["session_number"].to_numpy(), shuffled["session_number"].to_numpy())
    keys = list(zip(scored["client_id"], scored["session_number"], strict=True))
    np.testing.assert_array_equal(scored["risk"].to_numpy(), straight.loc[keys].to_numpy())


# --- persistence ------------------------------------------------------------------------------------------


def test_pickle_round_trip_predicts_identically(clinic, model):
    X = clinic.features.head(200)
    assert model.spec and model.trajectories  # populate the lazy caches: they must not break pickling
    restored = pickle.loads(pickle.dumps(model))
    assert not hasattr(restored, "_spec") or restored._spec is None
    np.testing.assert_array_equal(restored.predict_features(X), model.predict_features(X))
    pd.testing.assert_frame_equal(
        restored.predict(None, X, params={"contributions": True}),
        model.predict(None, X, params={"contributions": True}),
    )
    assert restored.spec == model.spec
    assert restored.trajectories == model.trajectories
    assert restored.metadata == {"test": True}


def test_signature_lists_every_feature_column(clinic, model):
    signature = model.signature()
    columns = clinic.spec.feature_columns()
    assert signature.inputs.input_names() == columns
    types = dict(zip(signature.inputs.input_names(), signature.inputs.input_types(), strict=True))
    for column in columns:
        expected = DataType.string if column in clinic.spec.categorical_covariates else DataType.double
        assert types[column] == expected, column
    assert all(not spec.required for spec in signature.inputs.inputs)
    assert signature.outputs.input_names() == [RISK]
    params = {p.name: p for p in signature.params.params}
    assert set(params) == {"contributions"}
    assert params["contributions"].default is False


def test_example_input_is_json_like_and_scores_the_same(clinic, model):
    X = clinic.features.head(5)
    example = model.example_input(X)
    assert list(example.columns) == clinic.spec.feature_columns()
    assert example["gender"].dtype == object
    assert all(v is None or isinstance(v, str) for v in example["gender"])
    np.testing.assert_array_equal(model.predict_features(example), model.predict_features(X))


# --- MLflow ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registered(mlflow_store, clinic, models):
    """The LightGBM model logged and registered (version 1) in a throwaway MLflow store."""
    experiment = mlflow.create_experiment("packaged-tests", artifact_location=str(mlflow_store.artifacts))
    rows = clinic.features.head(5)
    example = models["lightgbm"].example_input(rows)
    with mlflow.start_run(experiment_id=experiment) as run:
        info = log_model(models["lightgbm"], check_rows=clinic.train, registered_name=MODEL_NAME, input_example=example)
    return {"info": info, "run_id": run.info.run_id, "rows": rows, "example": example, "uri": mlflow_store.uri}


def test_logged_model_is_registered_as_version_1(registered):
    assert str(registered["info"].registered_model_version) == "1"
    version = MlflowClient().get_model_version(MODEL_NAME, "1")
    assert version.run_id == registered["run_id"]
    assert mlflow.get_tracking_uri() == registered["uri"]


def test_loaded_model_predicts_identically(registered, models):
    original = models["lightgbm"]
    rows, example = registered["rows"], registered["example"]
    expected = original.predict_features(rows)

    unwrapped = load_model(f"models:/{MODEL_NAME}/1")
    assert isinstance(unwrapped, DropoutRiskModel)
    assert unwrapped.kind == "lightgbm" and unwrapped.spec == original.spec
    np.testing.assert_array_equal(unwrapped.predict_features(rows), expected)

    pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/1")
    served = pyfunc.predict(example)
    assert list(served.columns) == [RISK]
    np.testing.assert_array_equal(served[RISK].to_numpy(), expected)
    explained = pyfunc.predict(example, params={"contributions": True})
    pd.testing.assert_frame_equal(
        explained.reset_index(drop=True),
        original.predict(None, rows, params={"contributions": True}).reset_index(drop=True),
    )


def test_the_scorer_loads_from_its_files_without_unpickling(registered, models, monkeypatch):
    original = models["lightgbm"]
    rows = registered["rows"]

    def refuse(*_args, **_kwargs):
        raise AssertionError("serving must not unpickle the model")

    for module, name in [(pickle, "load"), (pickle, "loads"), (cloudpickle, "load"), (cloudpickle, "loads")]:
        monkeypatch.setattr(module, name, refuse)
    monkeypatch.setattr(mlflow.pyfunc, "load_model", refuse)
    for uri in (f"models:/{MODEL_NAME}/1", f"runs:/{registered['run_id']}/model"):
        scorer = load_scorer(uri)
        assert scorer.kind == "lightgbm" and scorer.spec == original.spec
        assert scorer.trajectories == original.trajectories
        X = scorer.matrix(registered["example"])
        np.testing.assert_allclose(scorer.predict(X), original.predict_features(rows), rtol=0, atol=1e-12)
        parts, bias = scorer.contributions(X)
        expected = original.contributions(rows)
        np.testing.assert_allclose(parts, expected[scorer.columns].to_numpy(), rtol=0, atol=1e-10)
        np.testing.assert_allclose(bias, expected["bias"].to_numpy(), rtol=0, atol=1e-10)


def test_a_model_whose_scorer_disagrees_is_not_logged(registered, models, clinic, monkeypatch):
    client = MlflowClient()
    before = len(client.search_model_versions(f"name='{MODEL_NAME}'"))
    right = extraction.extract(models["logistic"])
    wrong = replace(right, calibration=replace(right.calibration, intercept=right.calibration.intercept + 1e-6))
    monkeypatch.setattr(extraction, "extract", lambda _model: wrong)
    experiment = mlflow.get_experiment_by_name("packaged-tests").experiment_id
    with mlflow.start_run(experiment_id=experiment), pytest.raises(ArtifactMismatchError, match="not registering"):
        log_model(models["logistic"], check_rows=clinic.train, registered_name=MODEL_NAME)
    assert len(client.search_model_versions(f"name='{MODEL_NAME}'")) == before


def test_logged_signature_and_metadata(registered, models):
    info = mlflow.models.get_model_info(f"models:/{MODEL_NAME}/1")
    assert info.signature.inputs.input_names() == models["lightgbm"].spec.feature_columns()
    assert info.metadata == {"kind": "lightgbm", "max_landmark": models["lightgbm"].spec.max_landmark}


def test_alias_round_trip(registered):
    client = MlflowClient()
    info = registered["info"]
    # A second version of the same artifacts, so moving the alias is observable.
    second = client.create_model_version(MODEL_NAME, info.model_uri, run_id=registered["run_id"])
    assert version_for_alias("challenger") is None
    set_alias("challenger", 1)
    assert str(version_for_alias("challenger").version) == "1"
    set_alias("challenger", second.version)
    assert str(version_for_alias("challenger").version) == str(second.version) == "2"
    set_alias("champion", "1")
    assert str(version_for_alias("champion").version) == "1"
    assert str(version_for_alias("challenger").version) == "2"
    assert isinstance(load_model(model_uri("champion")), DropoutRiskModel)


def test_absent_alias_or_model_is_none(registered):
    assert version_for_alias("no-such-alias") is None
    assert version_for_alias("champion", name="no-such-model") is None


def test_model_uri_names_an_alias():
    assert model_uri() == "models:/dropout-risk@champion"
    assert model_uri("challenger", name="other") == "models:/other@challenger"
