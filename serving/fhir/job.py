"""``dropout-risk import-fhir``: a Bundle or an NDJSON file (FHIR Bulk Data export) into a clinic's sessions.

The same reading, numbering and rules as ``POST /fhir/r4``, scored by the model the service would serve.
"""

from __future__ import annotations

import functools
from pathlib import Path

from sqlalchemy import select

from dropout_risk.serving import served_version
from dropout_risk.serving.db import make_engine, session_factory
from dropout_risk.serving.fhir.codes import CodeMap
from dropout_risk.serving.fhir.importer import Imported, import_entries
from dropout_risk.serving.fhir.parse import Incoming, Unreadable, read_bundle, read_ndjson
from dropout_risk.serving.migrate import upgrade
from dropout_risk.serving.model_holder import ModelHolder
from dropout_risk.serving.scoring import ScoringContext
from dropout_risk.serving.settings import ServingSettings
from dropout_risk.serving.tables import Clinic


class ImportRefused(ValueError):
    """Nothing was imported: the file, the clinic or the model is missing or unreadable."""


def read_file(path: Path) -> Incoming:
    """``.ndjson`` (one resource a line, read as a collection), else a JSON Bundle. Raises Unreadable."""
    import json

    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".ndjson":
        return read_ndjson(text.splitlines())
    try:
        return read_bundle(json.loads(text))
    except ValueError as exc:
        raise Unreadable(str(exc) if isinstance(exc, Unreadable) else "not a JSON document") from None


def import_file(path: Path, clinic: str, settings: ServingSettings) -> Imported:
    """Import into ``clinic``: committed unless a transaction Bundle has a failed entry. Raises ImportRefused."""
    try:
        incoming = read_file(path)
    except (OSError, Unreadable) as exc:
        raise ImportRefused(f"{path.name}: {exc}") from None
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
        holder = ModelHolder(settings.serving.model_uri)
        holder.attach(functools.partial(served_version.announce, engine))
        holder.refresh()
        if holder.current is None:
            raise ImportRefused(f"no model to score with at {settings.serving.model_uri} ({holder.last_error})")
        registry = settings.registry()
        scoring = ScoringContext.of(holder.current, registry, settings.serving.bands)
        codes = CodeMap.of(registry, settings.fhir.codes)
        with session_factory(engine)() as db:
            clinic_id = db.scalar(select(Clinic.id).where(Clinic.name == clinic))
            if clinic_id is None:
                raise ImportRefused(f"no clinic named {clinic!r}: create it with dropout-risk keys create --clinic")
            imported = import_entries(db, clinic_id, incoming, codes, scoring, settings.webhooks.band_rise)
            if incoming.kind == "transaction" and imported.failed:
                db.rollback()
            else:
                db.commit()
        return imported
    finally:
        engine.dispose()
