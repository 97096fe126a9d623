"""CompiledModel, built from the extracted scorer artifact, gives DropoutRiskModel's risks and contributions."""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression

from dropout_risk.models import extract as extraction
from dropout_risk.models.artifact import (
    BOOSTER_TXT,
    SCORER_JSON,
    ArtifactError,
    Calibration,
    ScorerArtifact,
    write_artifact,
)
from dropout_risk.models.clinical_rule import ClinicalRuleClassifier
from dropout_risk.models.compiled import CompiledModel, risk_per_session
from dropout_risk.models.estimators import make_candidate
from dropout_risk.models.extract import ArtifactMismatchError, compile_model, discrepancy, extract
from dropout_risk.models.logodds import logit
from dropout_risk.models.packaged import DropoutRiskModel
from tests.support.clinic import landmark_calibrator

BLANK = "blank"  # a numeric covariate never observed in training
REFERRAL = "referral"  # a categorical covariate that carries signal
REFERRAL_LEVELS = ("court", "gp", "school", "self")  # the spec's levels; "school" never occurs in training
TRAINING_REFERRAL_ORDER = ["self", "gp", "court"]  # the training frame's own categories: other order, no "school"
N_ROWS = 300

# (kind, calibration, feature subset or None for every column)
VARIANTS = {
    "logistic-sigmoid": ("logistic", "sigmoid", None),
    "logistic-isotonic": ("logistic", "isotonic", None),
    "lightgbm-sigmoid": ("lightgbm", "sigmoid", None),
    "lightgbm-isotonic": ("lightgbm", "isotonic", None),
    "logistic-subset": ("logistic", "sigmoid", ("outcome", "covariates")),
    "lightgbm-subset": ("lightgbm", "sigmoid", ("outcome", "covariates")),
}


@dataclass(frozen=True)
class Cohort:
    spec: object
    trajectories: object
    train: pd.DataFrame
    y: np.ndarray
    rows: pd.DataFrame  # rows to score: missing values, unseen levels, values never seen in training


@pytest.fixture(scope="module")
def cohort(clinic) -> Cohort:
    """The simulated clinic plus an all-NaN numeric covariate and an informative referral covariate."""
    spec = replace(
        clinic.spec,
        numeric_covariates=(*clinic.spec.numeric_covariates, BLANK),
        categorical_covariates={**clinic.spec.categorical_covariates, REFERRAL: REFERRAL_LEVELS},
    )
    rng = np.random.default_rng(3)
    train = clinic.train.copy()
    y = clinic.y
    referral = np.where(
        y == 1,
        rng.choice(["court", "gp", "self"], len(y), p=[0.6, 0.3, 0.1]),
        rng.choice(["court", "gp", "self"], len(y), p=[0.1, 0.3, 0.6]),
    ).astype(object)
    referral[rng.random(len(y)) < 0.1] = None
    train[REFERRAL] = pd.Categorical(referral, categories=TRAINING_REFERRAL_ORDER)
    train[BLANK] = np.nan
    train.loc[rng.random(len(train)) < 0.1, "gender"] = np.nan  # so "missing" is a one-hot level

    rows = clinic.features.sample(N_ROWS, random_state=0).copy()  # shuffled, non-range index
    rows[REFERRAL] = rng.choice([*REFERRAL_LEVELS, "tribunal", None], N_ROWS)
    rows[BLANK] = np.where(rng.random(N_ROWS) < 0.3, rng.normal(size=N_ROWS), np.nan)
    gender = rows["gender"].astype(object).to_numpy(copy=True)
    gender[rng.random(N_ROWS) < 0.15] = "nonbinary"
    gender[rng.random(N_ROWS) < 0.15] = None
    rows["gender"] = gender
    numeric = [c for c in spec.feature_columns() if c not in spec.categorical_covariates]
    holes = rng.random((N_ROWS, len(numeric))) < 0.1
    rows[numeric] = rows[numeric].mask(holes)
    return Cohort(spec, clinic.trajectories, train, y, rows)


def build(cohort: Cohort, kind: str, method: str, groups=None) -> DropoutRiskModel:
    """Estimator fitted on half the clients, calibrator on the other half (as test_packaged.build_model)."""
    train = cohort.train
    clients = np.sort(train["client_id"].unique())
    fit_rows = train["client_id"].isin(clients[::2]).to_numpy()
    columns = cohort.spec.feature_columns() if groups is None else cohort.spec.columns_for(groups)[::-1]
    params = {"n_estimators": 150} if kind == "lightgbm" else {}
    estimator = make_candidate(kind, train, columns, **params).fit(train[fit_rows], cohort.y[fit_rows])
    raw = estimator.predict_proba(train[~fit_rows])[:, 1]
    calibrator = landmark_calibrator(method, raw, cohort.y[~fit_rows], train[~fit_rows])
    return DropoutRiskModel(
        spec=cohort.spec,
        trajectories=cohort.trajectories,
        kind=kind,
        estimator=estimator,
        calibrator=calibrator,
        columns=columns,
    ).fit_reference(train)


@pytest.fixture(scope="module")
def models(cohort) -> dict[str, DropoutRiskModel]:
    return {name: build(cohort, *variant) for name, variant in VARIANTS.items()}


def from_files(model: DropoutRiskModel, directory: Path) -> CompiledModel:
    """What serving loads: the artifact written to files and read back."""
    return CompiledModel.from_directory(write_artifact(extract(model), directory))


@pytest.fixture(params=list(VARIANTS))
def pair(request, models, tmp_path) -> tuple[DropoutRiskModel, CompiledModel]:
    model = models[request.param]
    return model, from_files(model, tmp_path / "scorer")


def max_abs(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape
    return float(np.max(np.abs(a - b), initial=0.0))


# --- equality with the packaged model -------------------------------------------------------------


def test_predict_equals_the_packaged_model(cohort, pair):
    model, compiled = pair
    expected = model.predict_features(cohort.rows)
    got = compiled.predict(compiled.matrix(cohort.rows))
    assert got.shape == (N_ROWS,)
    assert max_abs(got, expected) <= 1e-12
    assert expected.std() > 0.01
    np.testing.assert_allclose(
        compiled.raw_probability(compiled.matrix(cohort.rows)), model.raw_probability(cohort.rows), rtol=0, atol=1e-12
    )


def test_contributions_equal_the_packaged_model(cohort, pair):
    model, compiled = pair
    expected = model.contributions(cohort.rows)
    parts, bias = compiled.contributions(compiled.matrix(cohort.rows))
    assert parts.shape == (N_ROWS, len(compiled.columns)) and bias.shape == (N_ROWS,)
    assert list(expected.columns) == [*compiled.columns, "bias"]
    assert max_abs(parts, expected[compiled.columns]) <= 1e-10
    assert max_abs(bias, expected["bias"]) <= 1e-10
    # The features really contribute, and the informative covariate among them.
    assert (np.abs(parts).max(axis=0) > 0).sum() > 5
    assert np.abs(parts[:, compiled.columns.index(REFERRAL)]).max() > 0.05
    unused = [j for j, c in enumerate(compiled.columns) if c not in model.estimator.named_steps["select"].columns]
    assert (parts[:, unused] == 0).all()


def test_subset_models_leave_unused_features_at_zero(models):
    compiled = compile_model(models["lightgbm-subset"])
    used = set(models["lightgbm-subset"].estimator.named_steps["select"].columns)
    assert "days_in_treatment" not in used and len(used) < len(compiled.columns)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_inputs_are_the_columns_the_estimator_reads(models, name):
    model = models[name]
    expected = tuple(dict.fromkeys(model.estimator.named_steps["select"].columns))
    assert compile_model(model).inputs == expected


def test_single_rows_equal_the_batch(cohort, pair):
    model, compiled = pair
    X = compiled.matrix(cohort.rows)
    batch, (parts, bias) = compiled.predict(X), compiled.contributions(X)
    for i in range(0, N_ROWS, 15):
        one = X[i : i + 1]
        np.testing.assert_allclose(compiled.predict(one), batch[i : i + 1], rtol=0, atol=1e-12)
        one_parts, one_bias = compiled.contributions(one)
        np.testing.assert_allclose(one_parts, parts[i : i + 1], rtol=0, atol=1e-12)
        np.testing.assert_allclose(one_bias, bias[i : i + 1], rtol=0, atol=1e-12)
        np.testing.assert_allclose(
            compiled.predict(one), model.predict_features(cohort.rows.iloc[i : i + 1]), rtol=0, atol=1e-12
        )


def test_the_calibrator_is_applied(cohort, models):
    """The sigmoid and isotonic variants share their estimator's raw output but not their risks."""
    for kind in ("logistic", "lightgbm"):
        sigmoid = compile_model(models[f"{kind}-sigmoid"])
        isotonic = compile_model(models[f"{kind}-isotonic"])
        X = sigmoid.matrix(cohort.rows)
        np.testing.assert_array_equal(sigmoid.raw_probability(X), isotonic.raw_probability(X))
        assert max_abs(sigmoid.predict(X), isotonic.predict(X)) > 0.01
        assert abs(sigmoid.logit_slope - 1) > 0.01 and isotonic.logit_slope == 1.0


@pytest.mark.parametrize("name", ["logistic-sigmoid", "lightgbm-isotonic"])
def test_calibrate_equals_the_calibrator_at_the_extremes(models, name):
    compiled = compile_model(models[name])
    p = np.array([0.0, 1e-12, 1e-7, 1e-6, 0.001, 0.2, 0.5, 0.93, 1 - 1e-7, 1 - 1e-12, 1.0])
    for landmark in (1.0, 2.0, 3.0, 7.0, 99.0, 2.5, np.nan):  # own intercepts, pooled, unseen, not a session
        at = np.full(p.size, landmark)
        expected = models[name].calibrator.transform(p, at)
        np.testing.assert_allclose(compiled.calibrate(p, at), expected, rtol=0, atol=1e-12)


def test_the_sigmoid_variants_have_an_intercept_per_landmark(cohort, models):
    """So every equality test here covers the per-landmark Platt intercepts."""
    for name, (_, method, _) in VARIANTS.items():
        table = extract(models[name]).calibration.landmark_intercepts
        assert len(table) >= 2 if method == "sigmoid" else table == {}
    intercepts = models["logistic-sigmoid"].calibrator.landmark_intercepts_.values()
    assert max(intercepts) - min(intercepts) > 1e-3  # they differ


# --- categorical covariates --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["logistic-sigmoid", "lightgbm-sigmoid"])
def test_every_category_scores_as_in_pandas(cohort, models, name):
    """One row under each spec level, an unseen level and a missing value, of both categorical covariates."""
    model = models[name]
    compiled = compile_model(model)
    base = cohort.rows.iloc[[0]]
    values = [*REFERRAL_LEVELS, "tribunal", None]
    variants = pd.concat(
        [base.assign(**{REFERRAL: v}) for v in values]
        + [base.assign(gender=v) for v in ["F", "M", "other", "nonbinary", None]]
    )
    X = compiled.matrix(variants)
    referral = X[:, compiled.columns.index(REFERRAL)]
    np.testing.assert_array_equal(referral[: len(values)], [0, 1, 2, 3, np.nan, np.nan])
    expected = model.predict_features(variants)
    assert max_abs(compiled.predict(X), expected) <= 1e-12
    assert max_abs(compiled.contributions(X)[0], model.contributions(variants)[compiled.columns]) <= 1e-10
    court, gp, school, own = expected[:4]
    assert court - own > 0.02  # referral matters, so a wrong mapping could not go unnoticed
    if model.kind == "lightgbm":
        # LightGBM re-codes against the training frame's categories, which differ from the spec's levels.
        assert model.estimator.named_steps["model"].booster_.pandas_categorical[-1] == TRAINING_REFERRAL_ORDER
        assert school == expected[len(values) - 1]  # a level it never saw is a missing value to it


def test_invalid_codes_are_missing_values(cohort, models):
    compiled = compile_model(models["lightgbm-sigmoid"])
    X = compiled.matrix(cohort.rows.head(5))
    j = compiled.columns.index(REFERRAL)
    missing = X.copy()
    missing[:, j] = np.nan
    for code in (-1.0, 4.0, 1.5, np.inf):
        odd = X.copy()
        odd[:, j] = code
        np.testing.assert_array_equal(compiled.predict(odd), compiled.predict(missing))


# --- inputs -----------------------------------------------------------------------------------------------


def json_records(rows: pd.DataFrame, columns: list[str], categorical) -> list[dict]:
    """Rows as a client would POST them: text categories, numbers as numbers or text, None, absent keys."""
    records = []
    for n, row in enumerate(rows[columns].to_dict(orient="records")):
        record = {}
        for i, (name, value) in enumerate(row.items()):
            if (i + n) % 11 == 0:
                continue  # absent
            if value is None or (isinstance(value, float) and np.isnan(value)):
                record[name] = None
            elif name in categorical:
                record[name] = str(value)
            elif (i + n) % 3 == 0:
                record[name] = repr(float(value))
            elif float(value).is_integer():
                record[name] = int(value)
            else:
                record[name] = float(value)
        records.append(record)
    return records


def test_matrix_follows_the_spec_columns_and_prepare(cohort, models):
    model = models["logistic-sigmoid"]
    compiled = compile_model(model)
    assert compiled.columns == cohort.spec.feature_columns()
    X = compiled.matrix(cohort.rows)
    assert X.shape == (N_ROWS, len(compiled.columns)) and X.dtype == np.float64
    shuffled = cohort.rows[cohort.rows.columns[::-1]]
    np.testing.assert_array_equal(compiled.matrix(shuffled), X)
    # Decoding the matrix gives back exactly what prepare makes of the rows.
    prepared = model.prepare(cohort.rows)
    decoded = {}
    for j, column in enumerate(compiled.columns):
        levels = cohort.spec.categorical_covariates.get(column)
        if levels is None:
            decoded[column] = X[:, j]
        else:
            codes = np.where(np.isnan(X[:, j]), -1, X[:, j]).astype(int)
            decoded[column] = pd.Categorical.from_codes(codes, categories=list(levels))
    pd.testing.assert_frame_equal(pd.DataFrame(decoded, index=cohort.rows.index), prepared)
    # JSON-like input gives the same matrix as the typed rows.
    records = pd.DataFrame.from_records(
        json_records(cohort.rows, compiled.columns, compiled.levels), index=cohort.rows.index
    )
    np.testing.assert_array_equal(compiled.matrix(records), compiled.matrix(model.example_input(records)))
    np.testing.assert_array_equal(compiled.predict(compiled.matrix(records)), model.predict_features(records))


def test_row_equals_matrix_of_one_record(cohort, models):
    compiled = compile_model(models["lightgbm-sigmoid"])
    records = json_records(cohort.rows.head(40), compiled.columns, compiled.levels)
    odd = {
        "age": "n/a",
        "landmark": " 3 ",
        "days_in_treatment": "1e2",
        "mean_gap_days": "1,000",
        "last_gap_days": True,
        "missed_total": np.int64(2),
        "missed_last": "inf",
        "ors_intake": "",
        "gender": 7,
        REFERRAL: "GP",
        BLANK: pd.NA,
    }
    for record in [*records, odd, {}]:
        expected = compiled.matrix(pd.DataFrame([record]))
        np.testing.assert_array_equal(compiled.row(record), expected)


def test_bad_shapes_and_infinity_are_refused(cohort, models):
    model = models["logistic-sigmoid"]
    compiled = compile_model(model)
    X = compiled.matrix(cohort.rows.head(3))
    with pytest.raises(ValueError, match="columns"):
        compiled.predict(X[:, 1:])
    with pytest.raises(ValueError, match="columns"):
        compiled.contributions(X[0])
    assert compiled.predict(X[:0]).shape == (0,)
    infinite = cohort.rows.head(3).assign(age=np.inf)
    with pytest.raises(ValueError, match="infinity"):
        model.predict_features(infinite)
    with pytest.raises(ValueError, match="infinity"):
        compiled.predict(compiled.matrix(infinite))


# --- what compiles --------------------------------------------------------------------------------------


def test_a_pickled_model_compiles_to_the_same_scorer(cohort, pair):
    model, compiled = pair
    restored = compile_model(pickle.loads(pickle.dumps(model)))
    X = compiled.matrix(cohort.rows)
    np.testing.assert_array_equal(restored.predict(X), compiled.predict(X))
    for got, expected in zip(restored.contributions(X), compiled.contributions(X), strict=True):
        np.testing.assert_array_equal(got, expected)
    assert discrepancy(restored, model, cohort.rows)["predict"] <= 1e-12


def test_discrepancy_reports_the_differences(cohort, models):
    compiled = compile_model(models["lightgbm-sigmoid"])
    assert max(discrepancy(compiled, models["lightgbm-sigmoid"], cohort.rows).values()) <= 1e-10
    other = discrepancy(compiled, models["lightgbm-isotonic"], cohort.rows)
    assert other["predict"] > 0.01 and other["contributions"] > 0.001


def test_other_models_are_refused(cohort, models):
    rule = ClinicalRuleClassifier(cohort.spec.to_dict()).fit(cohort.train, cohort.y)
    template = models["logistic-sigmoid"]
    clinical = DropoutRiskModel(
        spec=cohort.spec,
        trajectories=cohort.trajectories,
        kind="clinical_rule",
        estimator=rule,
        calibrator=template.calibrator,
        columns=template.columns,
    )
    with pytest.raises(ValueError, match="cannot be compiled"):
        compile_model(clinical)
    mislabelled = pickle.loads(pickle.dumps(clinical))
    mislabelled.kind = "logistic"
    with pytest.raises(ValueError, match="Pipeline"):
        compile_model(mislabelled)
    swapped = pickle.loads(pickle.dumps(template))
    swapped.kind = "lightgbm"
    with pytest.raises(ValueError, match="LGBMClassifier"):
        compile_model(swapped)


# --- the artifact files ------------------------------------------------------------------------------


def _no_constants(name: str) -> float:
    raise AssertionError(f"{name} is not standard JSON")


@pytest.mark.parametrize("name", ["logistic-isotonic", "lightgbm-sigmoid"])
def test_the_artifact_is_plain_json_and_lightgbm_text(cohort, models, name, tmp_path):
    directory = write_artifact(extract(models[name]), tmp_path / "scorer")
    document = json.loads((directory / SCORER_JSON).read_text(), parse_constant=_no_constants)
    assert document["kind"] == models[name].kind
    assert document["spec"] == cohort.spec.to_dict()
    assert document["trajectories"] == json.loads(json.dumps(cohort.trajectories.to_dict()))
    files = sorted(p.name for p in directory.iterdir())
    if models[name].kind == "lightgbm":
        assert files == [BOOSTER_TXT, SCORER_JSON]
        assert (directory / BOOSTER_TXT).read_text().startswith("tree\n")
    else:
        assert files == [SCORER_JSON]
        assert {t["input"] for t in document["logistic"]["terms"]} == {"value", "missing", "category", "level"}


def _tampered_coefficient(artifact: ScorerArtifact) -> ScorerArtifact:
    terms = list(artifact.estimator.terms)
    terms[0] = replace(terms[0], coef=terms[0].coef + 1e-7)  # a rounding-sized slip, not a gross error
    return replace(artifact, estimator=replace(artifact.estimator, terms=tuple(terms)))


def _forgotten_missing_category(artifact: ScorerArtifact) -> ScorerArtifact:
    return replace(artifact, estimator=replace(artifact.estimator, missing_category={}))


def _landmark_intercept_moved(artifact: ScorerArtifact) -> ScorerArtifact:
    table = dict(artifact.calibration.landmark_intercepts)
    table[min(table)] += 1e-6
    return replace(artifact, calibration=replace(artifact.calibration, landmark_intercepts=table))


def _categories_in_spec_order(artifact: ScorerArtifact) -> ScorerArtifact:
    """LightGBM's codes taken from the spec's levels instead of the training frame's categories."""
    categories = {**artifact.estimator.categories, REFERRAL: REFERRAL_LEVELS}
    return replace(artifact, estimator=replace(artifact.estimator, categories=categories))


@pytest.mark.parametrize(
    "name, tamper",
    [
        ("logistic-sigmoid", _tampered_coefficient),
        ("logistic-sigmoid", _forgotten_missing_category),
        ("lightgbm-sigmoid", _landmark_intercept_moved),
        ("lightgbm-sigmoid", _categories_in_spec_order),
    ],
)
def test_a_wrong_extraction_is_refused(cohort, models, name, tamper, tmp_path, monkeypatch):
    model = models[name]
    assert extraction.write_verified_artifact(model, cohort.train, tmp_path / "right").is_dir()
    wrong = tamper(extract(model))
    monkeypatch.setattr(extraction, "extract", lambda _model: wrong)
    with pytest.raises(ArtifactMismatchError, match=f"does not reproduce the fitted {model.kind} model"):
        extraction.write_verified_artifact(model, cohort.train, tmp_path / "wrong")


def test_an_empty_check_is_refused(cohort, models, tmp_path):
    with pytest.raises(ValueError, match="no feature rows"):
        extraction.write_verified_artifact(models["logistic-sigmoid"], cohort.train.head(0), tmp_path / "scorer")


def _edit_json(directory: Path, edit) -> None:
    document = json.loads((directory / SCORER_JSON).read_text())
    edit(document)
    (directory / SCORER_JSON).write_text(json.dumps(document))


DAMAGE = {
    "no scorer.json": (lambda d: (d / SCORER_JSON).unlink(), "scorer.json is missing"),
    "not JSON": (lambda d: (d / SCORER_JSON).write_text("{"), "scorer.json is not valid JSON"),
    "another format version": (lambda d: _edit_json(d, lambda j: j.update(version=99)), "format version 99"),
    "a field missing": (lambda d: _edit_json(d, lambda j: j.pop("calibration")), r"malformed \(KeyError\)"),
    "no per-landmark intercepts in version 3": (
        lambda d: _edit_json(d, lambda j: j["calibration"].pop("landmark_intercepts")),
        r"malformed \(KeyError\)",
    ),
    "a landmark that is not a session": (
        lambda d: _edit_json(d, lambda j: j["calibration"]["landmark_intercepts"].update({"0": 0.1})),
        r"malformed \(ValueError\)",
    ),
    "text for a number": (
        lambda d: _edit_json(d, lambda j: j["calibration"].update(coef="0.5")),
        r"malformed \(TypeError\)",
    ),
    "an unknown feature": (
        lambda d: _edit_json(d, lambda j: j["lightgbm"]["features"].__setitem__(0, "shoe_size")),
        "outside its feature spec",
    ),
    "no booster.txt": (lambda d: (d / BOOSTER_TXT).unlink(), "booster.txt is missing"),
    "a damaged booster": (
        lambda d: (d / BOOSTER_TXT).write_text("tree\nversion=v4\nnum_class=one\n"),
        r"LightGBM model text cannot be loaded \((LightGBMError|ValueError)\)",  # the error's type, never content
    ),
    "a feature fewer than the booster's": (
        lambda d: _edit_json(d, lambda j: j["lightgbm"]["features"].pop()),
        "^the LightGBM model text and scorer.json disagree on the number of features$",
    ),
    "a categorical feature's categories missing": (
        lambda d: _edit_json(d, lambda j: j["lightgbm"]["categories"].clear()),
        "^the booster's categorical features do not match the spec's categorical covariates$",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_artifact_raises_artifact_error(models, damage, tmp_path):
    directory = write_artifact(extract(models["lightgbm-sigmoid"]), tmp_path / "scorer")
    CompiledModel.from_directory(directory)  # intact, it loads
    spoil, message = DAMAGE[damage]
    spoil(directory)
    with pytest.raises(ArtifactError, match=message) as caught:
        CompiledModel.from_directory(directory)
    assert "tree" not in str(caught.value) and len(str(caught.value)) < 120  # names the fault, not the content


def test_a_version_2_artifact_is_read_with_its_pooled_intercept(cohort, models, tmp_path):
    """Models registered before per-landmark intercepts (format 2) keep scoring exactly as they did."""
    model = models["lightgbm-sigmoid"]
    directory = write_artifact(extract(model), tmp_path / "scorer")

    def as_version_2(document: dict) -> None:
        document["version"] = 2
        del document["calibration"]["landmark_intercepts"]

    _edit_json(directory, as_version_2)
    old = CompiledModel.from_directory(directory)
    X = old.matrix(cohort.rows)
    pooled = model.calibrator.logit_intercept
    expected = expit(model.calibrator.logit_slope * logit(old.raw_probability(X)) + pooled)
    np.testing.assert_allclose(old.predict(X), expected, rtol=0, atol=1e-9)
    assert max_abs(old.predict(X), compile_model(model).predict(X)) > 1e-4  # the per-landmark scorer differs


# --- edges the equality tests do not reach (mutation testing) -------------------------------------------


def _term_of_the_wrong_type(document: dict) -> None:
    value = next(t for t in document["logistic"]["terms"] if t["input"] == "value")
    value["feature"] = REFERRAL  # a categorical covariate read as a number


LOGISTIC_DAMAGE = {
    "a value term on a categorical feature": (
        _term_of_the_wrong_type,
        "^a logistic term does not match its feature's type in the spec$",
    ),
    "trajectories without their curves": (
        lambda j: j["trajectories"].pop("curves"),
        r"^the feature spec or trajectories cannot be read \(KeyError\)$",
    ),
    "a reference without its means": (
        lambda j: j["reference"].pop("means"),
        r"^the concept reference cannot be read \(KeyError\)$",
    ),
}


@pytest.mark.parametrize("damage", list(LOGISTIC_DAMAGE))
def test_a_damaged_logistic_artifact_names_its_fault(models, damage, tmp_path):
    directory = write_artifact(extract(models["logistic-sigmoid"]), tmp_path / "scorer")
    CompiledModel.from_directory(directory)  # intact, it loads
    edit, message = LOGISTIC_DAMAGE[damage]
    _edit_json(directory, edit)
    with pytest.raises(ArtifactError, match=message):
        CompiledModel.from_directory(directory)


def test_infinity_is_refused_with_scikit_learns_message(cohort, models):
    compiled = compile_model(models["logistic-sigmoid"])
    with pytest.raises(ValueError, match="^Input X contains infinity$"):
        compiled.predict(compiled.matrix(cohort.rows.head(3).assign(age=np.inf)))


def test_the_compiled_model_keeps_its_kind_and_scores_no_rows(cohort, pair):
    model, compiled = pair
    assert compiled.kind == model.kind
    X = compiled.matrix(cohort.rows.head(0))
    assert X.shape == (0, len(compiled.columns))
    assert compiled.predict(X).shape == (0,)


def test_a_matrix_of_python_values_with_none_scores_as_nan(cohort, pair):
    """A JSON-like matrix (lists of numbers, None for missing) is read as the float matrix with NaN."""
    _model, compiled = pair
    X = compiled.matrix(cohort.rows.head(20))
    assert np.isnan(X).any()
    as_json = [[None if np.isnan(v) else float(v) for v in row] for row in X]
    np.testing.assert_array_equal(compiled.predict(as_json), compiled.predict(X))


def test_concept_effects_equal_the_packaged_model(cohort, pair):
    model, compiled = pair
    rows = cohort.rows.dropna(subset=["landmark"])  # every scored row has its landmark
    expected = model.concept_effects(rows)
    got = compiled.concept_effects(compiled.matrix(rows))
    np.testing.assert_allclose(got.baseline, expected.baseline, rtol=0, atol=1e-8)
    assert set(got.effects) == set(expected.effects)
    for concept, effect in expected.effects.items():
        np.testing.assert_allclose(got.effects[concept], effect, rtol=0, atol=1e-8)


@pytest.mark.parametrize("name", ["logistic-sigmoid", "lightgbm-isotonic"])
def test_the_calibrator_takes_a_column_of_probabilities(models, name):
    compiled = compile_model(models[name])
    p = np.array([0.01, 0.2, 0.5, 0.93])
    landmark = np.array([1.0, 2.0, 3.0, 4.0])
    flat = compiled.calibrate(p, landmark)
    assert flat.shape == (4,)
    np.testing.assert_array_equal(compiled.calibrate(p.reshape(-1, 1), landmark), flat)


@pytest.mark.parametrize("name", ["logistic-isotonic", "lightgbm-isotonic"])
def test_isotonic_is_scikit_learns_even_when_its_first_step_is_one_point(models, name):
    """Between the first two thresholds the curve is interpolated, not held at the second one's value."""
    isotonic = IsotonicRegression(out_of_bounds="clip").fit([0.1, 0.5, 0.9], [0.0, 0.4, 1.0])
    x, y = tuple(map(float, isotonic.X_thresholds_)), tuple(map(float, isotonic.y_thresholds_))
    assert x == (0.1, 0.5, 0.9) and y[0] < y[1] < y[2]
    artifact = extract(models[name])
    compiled = CompiledModel(replace(artifact, calibration=Calibration(method="isotonic", x=x, y=y)))
    p = np.array([0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0])
    np.testing.assert_allclose(compiled.calibrate(p, np.ones(p.size)), isotonic.predict(p), rtol=0, atol=1e-15)


def _with_terms(artifact: ScorerArtifact, terms, **changes) -> CompiledModel:
    estimator = replace(artifact.estimator, terms=tuple(terms), **changes)
    return CompiledModel(replace(artifact, estimator=estimator))


def test_the_order_of_logistic_terms_does_not_change_the_scores(cohort, models):
    artifact = extract(models["logistic-sigmoid"])
    terms = artifact.estimator.terms
    categories_first = sorted(terms, key=lambda t: t.input != "category")
    assert categories_first[0].input == "category" and terms[0].input != "category"
    compiled, reordered = CompiledModel(artifact), _with_terms(artifact, categories_first)
    X = compiled.matrix(cohort.rows)
    np.testing.assert_allclose(reordered.predict(X), compiled.predict(X), rtol=0, atol=1e-12)
    np.testing.assert_allclose(reordered.contributions(X)[0], compiled.contributions(X)[0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("inputs", [("level",), ("value", "missing")])
def test_terms_of_zero_weight_can_be_left_out(cohort, models, inputs):
    """A logistic model without level terms, or without numeric terms, scores as one whose such terms weigh 0."""
    artifact = extract(models["logistic-sigmoid"])
    terms = artifact.estimator.terms
    assert any(t.input in inputs for t in terms)
    zeroed = _with_terms(artifact, [replace(t, coef=0.0) if t.input in inputs else t for t in terms])
    without = _with_terms(artifact, [t for t in terms if t.input not in inputs])
    X = zeroed.matrix(cohort.rows)
    np.testing.assert_allclose(without.predict(X), zeroed.predict(X), rtol=0, atol=1e-12)
    assert max_abs(zeroed.predict(X), CompiledModel(artifact).predict(X)) > 1e-3  # the terms mattered


@pytest.mark.parametrize("fill", [None, "school"])
def test_a_missing_category_without_a_term_to_fill_scores_as_no_category(cohort, models, fill):
    """Missing imputed as nothing, or as a level with no term ("school", never seen): every indicator 0."""
    artifact = extract(models["logistic-sigmoid"])
    assert not any(t.input == "category" and t.category == "school" for t in artifact.estimator.terms)
    missing_category = {k: v for k, v in artifact.estimator.missing_category.items() if k != REFERRAL}
    if fill is not None:
        missing_category[REFERRAL] = fill
    compiled = _with_terms(artifact, artifact.estimator.terms, missing_category=missing_category)
    rows = cohort.rows.head(30)
    missing = compiled.predict(compiled.matrix(rows.assign(**{REFERRAL: None})))
    school = compiled.predict(compiled.matrix(rows.assign(**{REFERRAL: "school"})))
    np.testing.assert_array_equal(missing, school)
    filled = CompiledModel(artifact).predict(compiled.matrix(rows.assign(**{REFERRAL: None})))
    assert max_abs(missing, filled) > 1e-6  # the fitted fill is a level with a term


def test_histories_without_episodes_score_as_the_packaged_model(clinic, models):
    model = models["logistic-sigmoid"]
    compiled = compile_model(model)
    clients = clinic.sessions["client_id"].drop_duplicates().head(12)
    sessions = clinic.sessions[clinic.sessions["client_id"].isin(clients)].reset_index(drop=True)
    sessions = sessions.assign(**{REFERRAL: "gp", BLANK: np.nan})
    expected = model.build_features(sessions)
    pd.testing.assert_frame_equal(compiled.build_features(sessions), expected)
    assert len(expected) > 12
    pd.testing.assert_frame_equal(compiled.score_history(sessions), model.score_history(sessions))


def test_risk_per_session_keeps_every_session_and_refuses_two_rows_of_a_landmark():
    sessions = pd.DataFrame({"client_id": ["a", "a", "a", "b", "b"], "session_number": [1, 2, 9, 1, 2]})
    features = pd.DataFrame({"client_id": ["b", "a", "a", "b"], "landmark": [1, 1, 2, 3]})
    risk = np.array([0.1, 0.2, 0.3, 0.4])
    scored = risk_per_session(sessions, features, risk, max_landmark=3)
    assert scored.columns.tolist() == ["client_id", "session_number", "landmark", "risk"]
    np.testing.assert_array_equal(scored["landmark"], [1, 2, 3, 1, 2])
    np.testing.assert_array_equal(scored["risk"], [0.2, 0.3, np.nan, 0.1, np.nan])  # no row: no risk
    twice = pd.concat([features, features.tail(1)], ignore_index=True)
    with pytest.raises(pd.errors.MergeError):
        risk_per_session(sessions, twice, np.append(risk, 0.5), max_landmark=3)


def test_a_missing_category_is_not_the_level_spelled_none_or_nan(cohort, models):
    """A level whose text is "None" or "nan" is a category like any other; None and NaN stay missing."""
    artifact = extract(models["logistic-sigmoid"])
    spec = json.loads(json.dumps(artifact.spec))
    spec["categorical_covariates"][REFERRAL] = ["court", "gp", "None", "nan", "self"]
    compiled = CompiledModel(replace(artifact, spec=spec))
    column = compiled.columns.index(REFERRAL)
    for missing in (None, np.nan, pd.NA):
        assert np.isnan(compiled.row({REFERRAL: missing})[0, column])
    assert np.isnan(compiled.matrix(pd.DataFrame({REFERRAL: [None, np.nan, pd.NA]}))[:, column]).all()
    assert compiled.row({REFERRAL: "None"})[0, column] == 2.0 and compiled.row({REFERRAL: "nan"})[0, column] == 3.0
    np.testing.assert_array_equal(compiled.matrix(pd.DataFrame({REFERRAL: ["None", "nan"]}))[:, column], [2.0, 3.0])
