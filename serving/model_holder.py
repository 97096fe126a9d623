"""The model being served, swapped atomically when the alias moves.

A request reads ``holder.current`` once and uses that object throughout, so a
response carries exactly one model version even while a new one is loading.

A version is loaded from its scorer artifact (plain JSON and LightGBM text; see
``models.compiled``), never by unpickling. Two kinds of trouble are kept apart:

- the registry does not answer: ``registry_reachable`` is False, the current model
  keeps serving, and every poll tries again;
- the registry answers but names a version the promotion gate did not promote (no
  ``gate=promoted`` tag, which ``dropout-risk promote`` writes when the gate passes or on
  ``--force --reason``): a ``LoadFailure`` naming that rule, and nothing of it downloaded.
  Whoever moves an alias by hand does not get around the gate;
- the registry answers but a version's files cannot be read: a ``LoadFailure``
  naming the version and the reason, the current model (if any) keeps serving, and
  polls do not load that version again. An explicit ``refresh()`` (the admin reload)
  retries it, and so does the alias moving to another version.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Run

from dropout_risk.models.artifact import ArtifactError
from dropout_risk.models.compiled import CompiledModel
from dropout_risk.models.profile import ReferenceProfile, read_profile
from dropout_risk.models.registry import fetch_scorer_files
from dropout_risk.serving.served_version import Served

log = logging.getLogger("dropout_risk.model")
_PER_LANDMARK = re.compile(r"test_l\d+_")
# The tags training/jobs/promote.py writes on the version it promotes (gate passed, or forced with a reason).
GATE_TAG, PROMOTED, GATE_REASONS_TAG = "gate", "promoted", "gate_reasons"
NOT_PROMOTED_REASON = (
    "not promoted by the gate: the server loads only a version tagged gate=promoted by "
    "`dropout-risk promote` (the gate passed, or a recorded --force --reason)"
)


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
    profile: ReferenceProfile | None = None  # the training data's reference profile (monitoring); None: older model

    @property
    def model(self) -> CompiledModel:
        """The served model's ``kind``, ``spec`` and ``trajectories`` (the scorer carries them)."""
        return self.compiled


@dataclass(frozen=True)
class LoadFailure:
    """Why a registered version could not be loaded: the exception type and a short reason of ours.

    Shown by /readyz: it never holds the model's content nor client data.
    """

    version: str
    error: str
    reason: str
    at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat())

    def as_dict(self) -> dict[str, str]:
        return {"version": self.version, "error": self.error, "reason": self.reason, "at": self.at}


class _VersionUnloadable(Exception):
    def __init__(self, failure: LoadFailure):
        super().__init__(failure.reason)
        self.failure = failure


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
        self.last_error: str | None = None  # the last registry error's type
        self.load_failure: LoadFailure | None = None  # the version the registry names, if it cannot be loaded
        # serving.served_version: the other processes' switches (generation 0: none seen yet)
        self._announce: Callable[[str, str], Served] | None = None
        self.generation = 0

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def refresh(self, *, retry_failed: bool = True) -> bool:
        """Check the registry; load and swap in a new version if there is one. True if swapped.

        Never raises: an unreachable registry or an unloadable version leaves the current
        model serving. ``retry_failed=False`` (the poll) skips a version that failed to load.
        """
        with self._lock:
            return self._refresh(retry_failed=retry_failed)

    def _refresh(self, *, retry_failed: bool) -> bool:
        try:
            client = MlflowClient()
            version = self._wanted_version(client)
            self.registry_reachable = True
            self.last_error = None
            if self._current is not None and self._current.version == version:
                self.load_failure = None  # the alias is back on the version being served
                return False
            if not retry_failed and self.load_failure is not None and self.load_failure.version == version:
                return False
            loaded = self._load(client, version)
        except _VersionUnloadable as unloadable:
            self._failed(unloadable.failure)
            return False
        except Exception as exc:  # MLflow raises many types for an absent store or model
            self._unreachable(exc)
            return False
        if not self._publish(loaded.version):
            return False
        previous = self._current.version if self._current else None
        self._current = loaded
        self.load_failure = None
        log.info("serving %s version %s (was %s)", self.name, loaded.version, previous)
        return True

    def attach(self, announce: Callable[[str, str], Served]) -> None:
        """From now on write each version to the shared row before serving it; the one loaded already, now."""
        with self._lock:
            self._announce = announce
            if self._current is not None:
                self._publish(self._current.version)

    def _publish(self, version: str) -> bool:
        """Write ``version`` as served (serving.served_version) before answering with it; False if that failed."""
        if self._announce is None:
            return True
        try:
            self.generation = self._announce(self.name, version).generation
        except Exception as exc:  # the database's driver errors: the next poll tries again
            log.error("could not record version %s as served (%s): not switching to it", version, type(exc).__name__)
            return False
        return True

    def behind(self, served: Served | None) -> bool:
        """Another process switched versions after this one last did (or caught up)."""
        return served is not None and served.generation > self.generation

    def catch_up(self, served: Served) -> None:
        """Serve the version another process switched to before answering (runs in a worker thread).

        Requests that find the process behind wait here for one load; those after it find it caught up.
        With the registry unreachable the process keeps its version until the next poll rather than
        asking the registry again on every request.
        """
        with self._lock:
            if not self.behind(served):
                return
            if self._current is not None and self._current.version == served.version:
                self.generation = served.generation
                return
            self._refresh(retry_failed=False)
            if self.behind(served) and self._current is not None and self.registry_reachable:
                # The registry names the version this process serves (the alias moved back since): say so.
                self._publish(self._current.version)
            self.generation = max(self.generation, served.generation)

    def _wanted_version(self, client: MlflowClient) -> str:
        version = self.pinned_version
        if self.alias is not None:
            version = str(client.get_model_version_by_alias(self.name, self.alias).version)
        if version is None:  # _parse_uri always gives an alias or a version
            raise ValueError(f"{self.uri} names neither an alias nor a version")
        return version

    def _unreachable(self, exc: Exception) -> None:
        self.registry_reachable = False
        self.last_error = type(exc).__name__
        if self._current is None:
            log.error("model registry unreachable or model %s missing (%s): not ready", self.uri, type(exc).__name__)
        else:
            log.warning(
                "model registry unreachable (%s): still serving version %s", type(exc).__name__, self._current.version
            )

    def _failed(self, failure: LoadFailure) -> None:
        self.load_failure = failure
        serving = f"still serving version {self._current.version}" if self._current else "not ready"
        log.error(
            "model %s version %s load failed (%s: %s): %s; not retried until the alias moves or an admin reload",
            self.name,
            failure.version,
            failure.error,
            failure.reason,
            serving,
        )

    def _load(self, client: MlflowClient, version: str) -> LoadedModel:
        # Load by explicit version: the alias may move between the lookup and the load.
        model_version = client.get_model_version(self.name, version)
        tags = model_version.tags or {}
        if tags.get(GATE_TAG) != PROMOTED or not tags.get(GATE_REASONS_TAG):
            raise _VersionUnloadable(LoadFailure(version, "NotPromoted", NOT_PROMOTED_REASON))
        run = client.get_run(model_version.run_id) if model_version.run_id else None
        compiled, profile = self._read_scorer(client, version)
        return LoadedModel(
            name=self.name,
            version=version,
            alias=self.alias,
            compiled=compiled,
            run_id=model_version.run_id,
            trained_at=_trained_at(run),
            metrics=_test_metrics(run),
            profile=profile,
        )

    def _read_scorer(self, client: MlflowClient, version: str) -> tuple[CompiledModel, ReferenceProfile | None]:
        """The version's scorer and reference profile; ``_VersionUnloadable`` if the scorer files are absent or
        unreadable (a profile that cannot be read is only logged: it serves monitoring, not risks)."""
        with tempfile.TemporaryDirectory(prefix="dropout-risk-scorer-") as tmp:
            try:
                files = fetch_scorer_files(f"models:/{self.name}/{version}", Path(tmp))
            except Exception as exc:
                # Raises (as the registry being unreachable) if the registry went away meanwhile;
                # if it still answers, this version's files are what is missing.
                client.get_model_version(self.name, version)
                reason = "its scorer files cannot be downloaded (logged before scorer artifacts, or a damaged store?)"
                raise _VersionUnloadable(LoadFailure(version, type(exc).__name__, reason)) from exc
            try:
                return CompiledModel.from_directory(files), _profile(files, version)
            except ArtifactError as exc:
                raise _VersionUnloadable(LoadFailure(version, type(exc).__name__, str(exc))) from exc
            except Exception as exc:  # a fault of the files, not of the registry: never retried by polls
                reason = "its scorer files cannot be read"
                raise _VersionUnloadable(LoadFailure(version, type(exc).__name__, reason)) from exc

    async def poll(self, interval: float) -> None:
        """Refresh every ``interval`` seconds until cancelled (loading runs in a worker thread)."""
        while True:
            await asyncio.sleep(interval)
            await asyncio.to_thread(self.refresh, retry_failed=False)


def _profile(files: Path, version: str) -> ReferenceProfile | None:
    try:
        return read_profile(files)
    except Exception as exc:  # monitoring goes without drift; the model still serves
        log.warning("model version %s: its reference profile cannot be read (%s)", version, type(exc).__name__)
        return None


def _trained_at(run: Run | None) -> str | None:
    if run is None or not run.info.start_time:
        return None
    return dt.datetime.fromtimestamp(run.info.start_time / 1000, dt.UTC).isoformat()


def _test_metrics(run: Run | None) -> dict[str, float]:
    """The run's overall test metrics, without the ``test_`` prefix (per-landmark ones left out)."""
    if run is None:
        return {}
    return {
        k.removeprefix("test_"): v
        for k, v in run.data.metrics.items()
        if k.startswith("test_") and not _PER_LANDMARK.match(k)
    }
