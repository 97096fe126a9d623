"""MLflow registry helpers: one registered model, aliases instead of stages."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from dropout_risk.models.names import CHALLENGER, CHAMPION, MODEL_NAME, model_uri
from dropout_risk.models.packaged import DropoutRiskModel

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "MODEL_NAME",
    "load_model",
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


def log_model(model: DropoutRiskModel, *, registered_name: str | None = MODEL_NAME, input_example=None):
    """Log the packaged model in the active run (and register it); returns MLflow's ModelInfo."""
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=model,
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
    """The packaged model behind a models:/ or runs:/ URI, as its Python object."""
    return mlflow.pyfunc.load_model(uri).unwrap_python_model()
