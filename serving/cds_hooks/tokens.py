"""The caller's JWT, as CDS Hooks 2.0 requires: signed by a key from its issuer's JWKS (PyJWT).

Checked: the issuer is configured (``[[cds_hooks.clients]]``), the signature verifies with an
asymmetric algorithm (never ``none`` or a shared-secret HMAC), ``aud`` is this service's URL,
``exp`` has not passed, ``iat`` is present, not in the future and not older than
``cds_hooks.max_token_age_seconds``, and ``jti`` was not seen before (in the database, until the
token expires: ``serving.cds_hooks.replays``). Every failure is the same ``InvalidToken``: the caller learns nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from sqlalchemy import Engine

from dropout_risk.serving.cds_hooks import replays
from dropout_risk.serving.settings import CdsHooksClient, CdsHooksConfig

ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512")
LEEWAY_SECONDS = 30  # clock skew between the record system and this service


class InvalidToken(Exception):
    """The request is not from a configured record system (the reason is logged by type only, never sent)."""


@dataclass(frozen=True)
class Caller:
    client: CdsHooksClient
    claims: Mapping[str, Any]


class TokenVerifier:
    def __init__(self, config: CdsHooksConfig, engine: Engine):
        self.config = config
        self.engine = engine  # where the token ids seen are kept (serving.cds_hooks.replays)
        self.clients = {c.issuer: c for c in config.clients}
        self._keys: dict[str, jwt.PyJWKClient | jwt.PyJWKSet] = {}
        for client in config.clients:
            if client.jwks is not None:
                self._keys[client.issuer] = jwt.PyJWKSet.from_dict(client.jwks)
            else:
                assert client.jwks_url is not None  # CdsHooksClient requires one of the two
                self._keys[client.issuer] = jwt.PyJWKClient(
                    client.jwks_url, cache_keys=True, lifespan=max(config.jwks_cache_seconds, 1), timeout=5
                )

    def verify(self, token: str, audience: str) -> Caller:
        """The configured caller whose key signed ``token`` for ``audience``. Raises InvalidToken."""
        try:
            header = jwt.get_unverified_header(token)
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
            client = self.clients.get(issuer) if isinstance(issuer, str) else None
            if client is None or header.get("alg") not in ALGORITHMS:
                raise InvalidToken("unknown issuer or algorithm")
            claims = jwt.decode(
                token,
                self._signing_key(client.issuer, header),
                algorithms=list(ALGORITHMS),
                audience=audience,
                issuer=client.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["iss", "aud", "exp", "iat", "jti"]},
            )
        except (jwt.PyJWTError, ValueError, KeyError) as exc:
            raise InvalidToken(type(exc).__name__) from None
        self._check_age(claims)
        if not replays.first_use(self.engine, client.issuer, str(claims["jti"]), float(claims["exp"]) + LEEWAY_SECONDS):
            raise InvalidToken("replayed jti")
        return Caller(client, claims)

    def _signing_key(self, issuer: str, header: Mapping[str, Any]) -> jwt.PyJWK:
        keys = self._keys[issuer]
        kid = header.get("kid")
        if isinstance(keys, jwt.PyJWKClient):
            if kid is None:
                raise KeyError("no kid")
            return keys.get_signing_key(kid)
        candidates = [k for k in keys.keys if kid is None or k.key_id == kid]
        if not candidates:
            raise KeyError("no such kid")
        return candidates[0]

    def _check_age(self, claims: Mapping[str, Any]) -> None:
        now = time.time()
        issued = float(claims["iat"])
        if issued > now + LEEWAY_SECONDS:
            raise InvalidToken("iat in the future")
        if issued < now - self.config.max_token_age_seconds - LEEWAY_SECONDS:
            raise InvalidToken("token too old")
