"""The model being served, swapped atomically when the alias moves.

A request reads ``holder.current`` once and uses that object throughout, so a
response carries exactly one model version even while a new one is loading.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import threading
from dataclasses import dataclass, field

from mlflow import MlflowClient

from dropout_risk.models.compiled import CompiledModel
from dropout_risk.models.registry import load_scorer

log = logging.getLogger("dropout_risk.model")
_PER_LANDMARK = re.compile(r"test_l\d+_")


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    alias: str | None
    compiled: CompiledModel
    run_id: str | None
    trained_at: str | None
    metrics: dict = field(default_factory=dict)
    loaded_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())

    @property
    def model(self) -> CompiledModel:
        """The served model's ``kind``, ``spec`` and ``trajectories`` (the scorer carries them)."""
        return self.compiled


def _parse_uri(uri: str) -> tuple[str, str | None, str | None]:
    """models:/name@alias or models:/name/version -> (name, alias, version)."""
    if not uri.startswith("models:/"):
        raise ValueError("model_uri must be a models:/ URI (models:/name@alias or models:/name/version)")
    rest = uri.removeprefix("models:/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        return name, alias, None
    name, version = rest.rsplit("/", 1)
    return name, None, version


class ModelHolder:
    """Loads the model behind a models:/ URI and reloads it when the alias points elsewhere."""

    def __init__(self, uri: str):
        self.uri = uri
        self.name, self.alias, self.pinned_version = _parse_uri(uri)
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()  # one load at a time; readers never wait on it
        self.registry_reachable = False
        self.last_error: str | None = None

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def refresh(self) -> bool:
        """Check the registry; load and swap in a new version if there is one. True if swapped.

        Never raises: an unreachable registry leaves the current model serving.
        """
        with self._lock:
            try:
                client = MlflowClient()
                if self.alias is not None:
                    version = str(client.get_model_version_by_alias(self.name, self.alias).version)
                else:
                    version = self.pinned_version
                self.registry_reachable = True
                self.last_error = None
                if self._current is not None and self._current.version == version:
                    return False
                loaded = self._load(client, version)
            except Exception as exc:  # MLflow raises many types for an absent store or model
                self.registry_reachable = False
                self.last_error = type(exc).__name__
                if self._current is None:
                    log.error(
                        "model registry unreachable or model %s missing (%s): not ready", self.uri, type(exc).__name__
                    )
                else:
                    log.warning(
                        "model registry unreachable (%s): still serving version %s",
                        type(exc).__name__,
                        self._current.version,
                    )
                return False
            previous = self._current.version if self._current else None
            self._current = loaded
            log.info("serving %s version %s (was %s)", self.name, loaded.version, previous)
            return True

    def _load(self, client: MlflowClient, version: str) -> LoadedModel:
        # Load by explicit version: the alias may move between the lookup and the load.
        # The scorer artifact's plain files: nothing unpickled, no scikit-learn internals read.
        compiled = load_scorer(f"models:/{self.name}/{version}")
        model_version = client.get_model_version(self.name, version)
        run = client.get_run(model_version.run_id) if model_version.run_id else None
        metrics = {
            k.removeprefix("test_"): v
            for k, v in (run.data.metrics.items() if run else ())
            if k.startswith("test_") and not _PER_LANDMARK.match(k)
        }
        trained_at = (
            dt.datetime.fromtimestamp(run.info.start_time / 1000, dt.UTC).isoformat()
            if run and run.info.start_time
            else None
        )
        return LoadedModel(
            name=self.name,
            version=version,
            alias=self.alias,
            compiled=compiled,
            run_id=model_version.run_id,
            trained_at=trained_at,
            metrics=metrics,
        )

    async def poll(self, interval: float) -> None:
        """Refresh every ``interval`` seconds until cancelled (loading runs in a worker thread)."""
        while True:
            await asyncio.sleep(interval)
            await asyncio.to_thread(self.refresh)
