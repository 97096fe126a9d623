"""MLflow registry helpers: one registered model, aliases instead of stages.

A registered model holds the pickled ``DropoutRiskModel`` (for ``mlflow.pyfunc.load_model``)
and, under ``artifacts/scorer/``, its scorer artifact: the plain files serving and batch
scoring load (``load_scorer``), with no unpickling.
"""

from __future__ import annotations

import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models.model import ModelInfo

from dropout_risk.models.artifact import SCORER_DIR
from dropout_risk.models.compiled import CompiledModel
from dropout_risk.models.names import CHALLENGER, CHAMPION, MODEL_NAME, model_uri
from dropout_risk.models.profile import ReferenceProfile, write_profile

if TYPE_CHECKING:  # serving reads the registry without the estimators' libraries (a faster server start)
    from dropout_risk.models.packaged import DropoutRiskModel

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "MODEL_NAME",
    "fetch_scorer_files",
    "load_model",
    "load_scorer",
    "log_model",
    "model_uri",
    "set_alias",
    "version_for_alias",
]
_RUNTIME_PACKAGES = ("mlflow", "scikit-learn", "lightgbm", "pandas", "numpy", "pyarrow", "pydantic")


def _pip_requirements() -> list[str]:
    """Pinned from this environment: explicit, and it spares MLflow's slow environment inference."""
    pins = []
    for package in _RUNTIME_PACKAGES:
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return pins


def log_model(
    model: DropoutRiskModel,
    *,
    check_rows: pd.DataFrame,
    registered_name: str | None = MODEL_NAME,
    input_example: pd.DataFrame | None = None,
    profile: ReferenceProfile | None = None,
) -> ModelInfo:
    """Log the packaged model and its scorer artifact in the active run (and register it).

    The artifact is checked against the model on ``check_rows`` (the training feature rows)
    first: a model whose artifact would score differently raises ``ArtifactMismatchError``
    and is neither logged nor registered. ``profile``, the training data's reference profile
    (``models.profile``), is stored beside the scorer files for monitoring. Returns MLflow's ModelInfo.
    """
    from dropout_risk.models.extract import write_verified_artifact  # training only: it needs the estimators

    with tempfile.TemporaryDirectory() as tmp:
        scorer = write_verified_artifact(model, check_rows, Path(tmp) / SCORER_DIR)
        if profile is not None:
            write_profile(profile, scorer)
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=model,
            artifacts={SCORER_DIR: str(scorer)},
            signature=model.signature(),
            input_example=input_example,
            pip_requirements=_pip_requirements(),
            registered_model_name=registered_name,
            metadata={"kind": model.kind, "max_landmark": model.spec.max_landmark},
        )


def version_for_alias(alias: str, name: str = MODEL_NAME, client: MlflowClient | None = None) -> ModelVersion | None:
    client = client or MlflowClient()
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def set_alias(alias: str, version: str | int, name: str = MODEL_NAME, client: MlflowClient | None = None) -> None:
    (client or MlflowClient()).set_registered_model_alias(name, alias, str(version))


def load_model(uri: str) -> DropoutRiskModel:
    """The packaged model behind a models:/ or runs:/ URI, as its (unpickled) Python object."""
    return mlflow.pyfunc.load_model(uri).unwrap_python_model()


def fetch_scorer_files(uri: str, destination: Path) -> Path:
    """Download the scorer artifact of the model at ``uri`` (models:/name/version, models:/name@alias,
    runs:/id/model) into ``destination``; returns the folder holding scorer.json."""
    source = f"{uri.rstrip('/')}/artifacts/{SCORER_DIR}"
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(destination)))


def load_scorer(uri: str) -> CompiledModel:
    """The scorer of the model at ``uri``, from its plain files (nothing unpickled)."""
    with tempfile.TemporaryDirectory() as tmp:
        return CompiledModel.from_directory(fetch_scorer_files(uri, Path(tmp)))
