"""The Spark engine gives the pandas engine's features and risks, to 1e-9, on local Spark.

One local[2] session serves the whole module (the JVM takes seconds to start).
The cohort is simulated: 400 clients, some still in treatment (no label), with
missed appointments; the model is a real one, trained and registered in a
throwaway MLflow store.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from typer.testing import CliRunner

pytest.importorskip("pyspark", reason="the Spark engine is the optional extra: pip install '.[spark]'")

from dropout_risk.cli.main import app  # noqa: E402
from dropout_risk.features.config import FeatureConfig  # noqa: E402
from dropout_risk.features.contract import ContractError  # noqa: E402
from dropout_risk.features.instruments import default_registry  # noqa: E402
from dropout_risk.features.landmarks import build_features  # noqa: E402
from dropout_risk.features.spec import infer_spec  # noqa: E402
from dropout_risk.features.trajectories import fit_expected_trajectories  # noqa: E402
from dropout_risk.models.registry import load_model  # noqa: E402
from dropout_risk.training.data import DataFileError, load_contract, read_table  # noqa: E402
from dropout_risk.training.jobs.score import score_sessions  # noqa: E402
from dropout_risk.training.jobs.train import train  # noqa: E402
from dropout_risk.training.spark.buckets import _apply_kinds  # noqa: E402
from dropout_risk.training.spark.build import for_arrow, to_pandas_features  # noqa: E402
from dropout_risk.training.spark.inputs import SparkInputs, build_features_spark, check_spark, score_spark  # noqa: E402
from dropout_risk.training.spark.jobs import write_parquet_spark  # noqa: E402
from dropout_risk.training.spark.session import (
    MALFORMED,
    SparkUnavailableError,
    local_cores,
    read_table_spark,
    spark_session,
)  # noqa: E402
from tests.support.training import settings_for  # noqa: E402

runner = CliRunner()
# pyspark 4 on pandas 3: its version notice and its own astype(copy=False); what we use is tested here.
pytestmark = [
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]
TOLERANCE = 1e-9
MODEL_URI = "models:/dropout-risk/1"


@pytest.fixture(scope="module")
def spark():
    # Small Arrow batches: a bucket arrives in several, as at scale (pyarrow then hands pandas chunked arrays).
    session = spark_session("local[2]", config={"spark.sql.execution.arrow.maxRecordsPerBatch": "300"})
    yield session
    session.stop()


@pytest.fixture(scope="module")
def data(cohorts, tmp_path_factory):
    """CSV files as the simulator writes them, and the same data as typed Parquet with two more covariates."""
    directory = tmp_path_factory.mktemp("spark-cohort")
    paths = cohorts.write(directory, 400, seed=11, ongoing_fraction=0.1)
    sessions = pd.read_csv(paths["sessions"], dtype={"client_id": str})
    sessions["session_date"] = pd.to_datetime(sessions["session_date"])  # a datetime64 column, not text
    sessions.to_parquet(directory / "sessions.parquet", index=False)
    episodes = pd.read_csv(paths["episodes"], dtype={"client_id": str})
    rng = np.random.default_rng(0)
    # A nullable integer (missing in some buckets only) and a text covariate with gaps.
    episodes["waited_weeks"] = pd.array(np.where(rng.random(400) < 0.2, None, rng.integers(0, 30, 400)), "Int64")
    episodes["referral"] = pd.array(rng.choice(np.array(["gp", "self", None], dtype=object), 400), "str")
    episodes.to_parquet(directory / "episodes.parquet", index=False)
    return {**paths, "sessions_pq": directory / "sessions.parquet", "episodes_pq": directory / "episodes.parquet"}


@pytest.fixture(scope="module")
def model_uri(mlflow_store, cohorts):
    paths = cohorts.files(500, seed=5)
    # A quick recipe (the scoring code is what is under test, not the model): logistic, 2 folds.
    train(
        paths["sessions"],
        paths["episodes"],
        settings_for(mlflow_store, folds=2, candidates=["logistic"], bootstrap_resamples=20),
    )
    return MODEL_URI


def pandas_features(sessions_path, episodes_path):
    """What the pandas `features` command computes: spec and curves from the same data."""
    result = load_contract(sessions_path, episodes_path, default_registry())
    spec = infer_spec(result.sessions, result.episodes, default_registry(), FeatureConfig())
    trajectories = fit_expected_trajectories(result.sessions, spec)
    return result, spec, trajectories, build_features(result.sessions, result.episodes, spec, trajectories)


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """Sorted by client and landmark, categoricals as text, dates at one unit."""
    out = frame.sort_values(["client_id", "landmark"], kind="stable").reset_index(drop=True)
    for name in out.columns:
        if isinstance(out[name].dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(out[name]):
            out[name] = out[name].astype(object).where(out[name].notna(), None)
        elif pd.api.types.is_datetime64_any_dtype(out[name]):
            out[name] = out[name].astype("datetime64[ns]")
    return out


def assert_same_features(spark_frame: pd.DataFrame, pandas_frame: pd.DataFrame) -> None:
    assert list(spark_frame.columns) == list(pandas_frame.columns)
    pd.testing.assert_frame_equal(
        comparable(spark_frame), comparable(pandas_frame), check_dtype=False, check_exact=False, rtol=0, atol=TOLERANCE
    )


def read_spark(spark, path):
    return read_table_spark(spark, path)


# --- features --------------------------------------------------------------------------------


def test_features_from_csv_equal_the_pandas_engine(spark, data):
    result, spec, trajectories, expected = pandas_features(data["sessions"], data["episodes"])
    # The cohort exercises what matters: ongoing clients (no label) and missed appointments.
    assert result.episodes["status"].eq("ongoing").sum() >= 20 and expected["label"].isna().any()
    assert (expected["missed_total"] > 0).any() and len(result.episodes) == 400

    with SparkInputs(spark, read_spark(spark, data["sessions"]), read_spark(spark, data["episodes"])) as inputs:
        check = inputs.check()
        assert check.ok and check.clients == 400 and check.session_rows == len(result.sessions)
        assert check.infer_spec(default_registry(), FeatureConfig()) == spec
        fitted = check.fit_trajectories(spec)
        for key, curve in trajectories.curves.items():
            for part in ("intercept", "slope", "resid_sd"):
                np.testing.assert_allclose(
                    getattr(fitted.curves[key], part), getattr(curve, part), rtol=1e-12, atol=1e-12
                )
            assert fitted.curves[key].n_clients == curve.n_clients
        table = inputs.features(spec, fitted, check).toPandas()

    assert_same_features(to_pandas_features(table, spec), expected)
    restored = to_pandas_features(table, spec)
    assert restored["gender"].dtype == expected["gender"].dtype  # the spec's levels, as Categorical


def test_features_from_typed_parquet_with_the_one_call_api(spark, data):
    _, spec, _, expected = pandas_features(data["sessions_pq"], data["episodes_pq"])
    assert "waited_weeks" in spec.numeric_covariates and spec.categorical_covariates["referral"] == ("gp", "self")
    frame = build_features_spark(spark, read_spark(spark, data["sessions_pq"]), read_spark(spark, data["episodes_pq"]))
    assert_same_features(frame.toPandas(), expected)


def test_invalid_data_fails_with_row_free_problems(spark, data, tmp_path):
    sessions = pd.read_csv(data["sessions"], dtype=str, keep_default_na=False)
    secret = "99.5"
    sessions.loc[[2, 7], "ors"] = secret
    sessions.loc[0, "session_date"] = "03/04/2024"
    sessions.to_csv(tmp_path / "bad.csv", index=False)
    episodes = pd.read_csv(data["episodes"], dtype=str, keep_default_na=False).iloc[1:]  # client 1 orphaned
    episodes.to_csv(tmp_path / "episodes.csv", index=False)

    with pytest.raises(ContractError) as caught:
        build_features_spark(
            spark,
            read_spark(spark, tmp_path / "bad.csv"),
            read_spark(spark, tmp_path / "episodes.csv"),
            names={"sessions": "bad.csv", "episodes": "episodes.csv"},
        )
    message = str(caught.value)
    assert "bad.csv, column ors: must be within 0-40 (Outcome Rating Scale) (2 rows)" in message
    assert "bad.csv, column session_date: must be an ISO date (YYYY-MM-DD) (1 row)" in message
    assert "bad.csv, column client_id: client has sessions but no row in episodes (1 row)" in message
    # No row numbers, values or client ids: these are health records.
    assert "row 3" not in message and secret not in message and sessions.loc[0, "client_id"] not in message


# --- scoring ---------------------------------------------------------------------------------


def test_scores_equal_score_sessions(spark, data, model_uri):
    model = load_model(model_uri)
    result = load_contract(data["sessions"], data["episodes"], default_registry())
    expected = score_sessions(model, result.sessions, result.episodes)

    scored = score_spark(
        spark, model_uri, read_spark(spark, data["sessions"]), read_spark(spark, data["episodes"])
    ).toPandas()
    scored = scored.sort_values(["client_id", "session_number"], kind="stable").reset_index(drop=True)
    assert len(scored) == len(expected) == len(result.sessions)
    assert (scored["session_number"] > model.spec.max_landmark).any()  # late sessions: last landmark's risk
    pd.testing.assert_frame_equal(scored, expected, check_dtype=False, check_exact=False, rtol=0, atol=TOLERANCE)


# --- the commands ----------------------------------------------------------------------------


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    return result, " ".join(result.output.split())


def test_features_command_on_spark_writes_the_pandas_table(spark, data, tmp_path):
    files = ["--sessions", data["sessions"], "--episodes", data["episodes"]]
    result, output = invoke("features", *files, "--out", tmp_path / "pandas.parquet")
    assert result.exit_code == 0, output
    result, output = invoke(
        "features", *files, "--out", tmp_path / "spark.parquet", "--engine", "spark", "--spark-master", "local[2]"
    )
    assert result.exit_code == 0, output
    assert "wrote" in output and "400 clients" in output
    assert_same_features(pd.read_parquet(tmp_path / "spark.parquet"), pd.read_parquet(tmp_path / "pandas.parquet"))
    # Health data at rest (issue 12, item 10): Spark's part files are made owner-only like the pandas file.
    modes = {p.stat().st_mode & 0o777 for p in (tmp_path / "spark.parquet").rglob("*") if p.is_file()}
    assert modes == {0o600} and (tmp_path / "pandas.parquet").stat().st_mode & 0o777 == 0o600
    # The CLI leaves a session it did not start running.
    assert spark.range(3).count() == 3


def test_score_command_on_spark_writes_the_pandas_risks(spark, data, model_uri, tmp_path):
    # Parquet sessions and no episodes file: every client ongoing, covariates unknown, in both engines.
    files = ["--sessions", data["sessions_pq"], "--model", model_uri]
    result, output = invoke("score", *files, "--out", tmp_path / "pandas.parquet")
    assert result.exit_code == 0, output
    result, output = invoke("score", *files, "--out", tmp_path / "spark.parquet", "--engine", "spark")
    assert result.exit_code == 0, output
    assert "400 clients" in output
    expected = pd.read_parquet(tmp_path / "pandas.parquet")
    written = pd.read_parquet(tmp_path / "spark.parquet")
    assert list(written.columns) == ["client_id", "session_number", "risk"]
    written = written.sort_values(["client_id", "session_number"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(written, expected, check_dtype=False, check_exact=False, rtol=0, atol=TOLERANCE)


def test_commands_reject_unknown_engines_and_non_parquet_spark_output(data, tmp_path):
    files = ["--sessions", data["sessions"], "--episodes", data["episodes"]]
    result, output = invoke("features", *files, "--out", tmp_path / "f.parquet", "--engine", "dask")
    assert result.exit_code == 1 and "pandas or spark" in output
    result, output = invoke("features", *files, "--out", tmp_path / "f.csv", "--engine", "spark")
    assert result.exit_code == 1 and "writes Parquet" in output
    assert not (tmp_path / "f.csv").exists()
    result, output = invoke(
        "score", "--sessions", data["sessions"], "--out", tmp_path / "r.parquet", "--engine", "dask"
    )
    assert result.exit_code == 1 and "pandas or spark" in output


def test_spark_output_never_replaces_a_folder_it_did_not_write(tmp_path):
    folder = tmp_path / "precious.parquet"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(DataFileError, match="not an earlier Spark output"):
        write_parquet_spark(None, folder, ["client_id"])
    assert (folder / "notes.txt").exists()


# --- small parts -----------------------------------------------------------------------------


def test_an_object_column_is_typed_as_over_the_whole_file():
    # pandas < 3 reads text as object, and the contract types such a column as numbers only when every
    # given cell of the file is one: a bucket cannot see that, so the first pass decides for all buckets.
    episodes = pd.DataFrame({"site": pd.Series(["1", "2"], dtype=object), "band": pd.Series([None, " "], dtype=object)})
    typed = _apply_kinds(episodes.copy(), {"site": "text", "band": "numeric"})
    assert typed["site"].dtype == "string" and typed["site"].tolist() == ["1", "2"]
    assert typed["band"].dtype == "float64" and typed["band"].isna().all()
    assert _apply_kinds(episodes.copy(), {"site": "numeric"})["site"].dtype == object


def test_text_reaches_arrow_in_one_piece():
    # pandas 3 text after a concat is a chunked pyarrow array, which pyspark 4 cannot put in a batch.
    chunked = pd.concat([pd.Series(["a", None], dtype="str"), pd.Series(["b"], dtype="str")], ignore_index=True)
    assert isinstance(pa.Array.from_pandas(chunked), pa.ChunkedArray)
    frame = for_arrow(
        pd.DataFrame({"client_id": chunked, "gender": pd.Categorical(["F", None, "M"]), "risk": [0.1, 0.2, 0.3]})
    )
    assert frame["client_id"].tolist() == ["a", None, "b"] and frame["gender"].tolist() == ["F", None, "M"]
    assert isinstance(pa.Array.from_pandas(frame["client_id"], type=pa.string()), pa.Array)
    assert frame["risk"].dtype == "float64"


def test_local_master_cores():
    assert local_cores("local[2]") == 2
    assert local_cores("local") == 1
    assert local_cores("local[3,2]") == 3
    assert local_cores("local[*]") >= 1
    assert local_cores("spark://head:7077") is None


def test_missing_pyspark_names_the_extra(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "pyspark", None)  # import pyspark -> ImportError
    with pytest.raises(SparkUnavailableError, match=r"pip install '\.\[spark\]'"):
        spark_session()


def test_csv_is_read_as_text_like_the_pandas_engine(spark, data, tmp_path):
    frame = read_spark(spark, data["sessions"])
    assert {f.dataType.simpleString() for f in frame.schema.fields} == {"string"}
    assert [c for c in frame.columns if c != MALFORMED] == list(read_table(data["sessions"]).columns)

    # A short line is padded with blanks (as pandas does); a long one makes the file unreadable, as in
    # pandas, but Spark's own parse error would print the line: the first pass counts them instead.
    lines = data["sessions"].read_text().splitlines()
    fields = lines[1].split(",")
    short, long = ",".join(fields[:-1]), ",".join([*fields, "SECRET"])
    (tmp_path / "s.csv").write_text("\n".join([lines[0], short, *lines[2:5], long, *lines[5:]]) + "\n")
    check = check_spark(spark, read_spark(spark, tmp_path / "s.csv"), read_spark(spark, data["episodes"]))
    message = "; ".join(map(str, check.problems))
    assert message == "sessions: not a well-formed CSV file: a line has more fields than the header (1 row)"
    assert "SECRET" not in message and short not in message
    (tmp_path / "s.csv").write_text("\n".join([lines[0], short, *lines[2:]]) + "\n")
    padded = check_spark(spark, read_spark(spark, tmp_path / "s.csv"), read_spark(spark, data["episodes"]))
    assert padded.ok and padded.session_rows == len(lines) - 1
