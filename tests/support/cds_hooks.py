"""CDS Hooks test helpers: key pairs, a JWKS served over local HTTP, signed tokens, and the specification's shapes."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa


class KeyPair:
    """An RS256 (RSA 2048) or ES256 (P-256) key pair and its public JWK."""

    def __init__(self, kid: str, algorithm: str = "RS256"):
        self.kid, self.algorithm = kid, algorithm
        if algorithm == "RS256":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            public = jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            public = jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.jwk = {**public, "kid": kid, "alg": algorithm, "use": "sig"}

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(claims, self.private, algorithm=self.algorithm, headers={"kid": self.kid, **header})


def claims(issuer: str, audience: str, **change: Any) -> dict[str, Any]:
    """The claims CDS Hooks requires, fresh: iss, sub, aud, iat, exp (5 minutes), a new jti."""
    now = int(time.time())
    out = {"iss": issuer, "sub": "ehr-client", "aud": audience, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
    out.update(change)
    return {k: v for k, v in out.items() if v is not None}


@contextmanager
def jwks_server(*keys: KeyPair) -> Iterator[str]:
    """A local HTTP server answering the keys' JWKS at /jwks.json; yields its URL; counts requests."""
    body = json.dumps({"keys": [k.jwk for k in keys]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802  (http.server's name)
            self.send_response(200 if self.path == "/jwks.json" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


# The specification's JSON shapes (CDS Hooks 2.0, https://cds-hooks.hl7.org/2.0/: "Discovery" and "CDS Service
# Response"), written out as JSON Schema: required members, types, enumerations and the 140-character summary.
def closed(required: list[str], **properties: Any) -> dict[str, Any]:
    """An object with these members only (the specification's "extension" member aside)."""
    return {"type": "object", "required": required, "additionalProperties": False, "properties": properties}


STRING: dict[str, Any] = {"type": "string"}
CODING = {"type": "object", "properties": {"system": STRING, "code": STRING}}
SERVICE = closed(
    ["hook", "description", "id"],
    hook=STRING,
    title=STRING,
    description=STRING,
    id={"type": "string", "pattern": "^[A-Za-z0-9._~-]+$"},
    prefetch={"type": "object", "additionalProperties": STRING},
    usageRequirements=STRING,
    extension={"type": "object"},
)
DISCOVERY_SCHEMA = {
    "type": "object",
    "required": ["services"],
    "properties": {"services": {"type": "array", "items": SERVICE}},
}
LINK = closed(
    ["label", "url", "type"],
    label=STRING,
    url={"type": "string", "pattern": "^https?://"},
    type={"enum": ["absolute", "smart"]},
    appContext=STRING,
    autolaunchable={"type": "boolean"},
)
CARD = closed(
    ["summary", "indicator", "source"],
    uuid=STRING,
    summary={"type": "string", "maxLength": 140},
    detail=STRING,
    indicator={"enum": ["info", "warning", "critical"]},
    source=closed(["label"], label=STRING, url=STRING, icon=STRING, topic=CODING),
    suggestions={"type": "array"},
    selectionBehavior={"enum": ["at-most-one", "any"]},
    overrideReasons={"type": "array", "items": CODING},
    links={"type": "array", "items": LINK},
    extension={"type": "object"},
)
CARDS_SCHEMA = {
    "type": "object",
    "required": ["cards"],
    "properties": {"cards": {"type": "array", "items": CARD}, "systemActions": {"type": "array"}},
}
