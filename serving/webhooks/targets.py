"""Where deliveries may go: https only; http to the loopback interface only when explicitly allowed (tests)."""

from __future__ import annotations

from urllib.parse import urlsplit

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def target_problem(url: str, allow_loopback_http: bool) -> str | None:
    """Why ``url`` is not a webhook target, or None."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return "must be an absolute https URL"
    if not host or parts.username or parts.password:
        return "must be an absolute https URL without credentials"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and allow_loopback_http and host in LOOPBACK:
        return None
    return "must be https (http only to the loopback interface, with webhooks.allow_loopback_http)"
