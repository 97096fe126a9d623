"""The registered model's name and aliases: plain strings, importable without MLflow (the CLI's defaults)."""

from __future__ import annotations

MODEL_NAME = "dropout-risk"
CHAMPION = "champion"
CHALLENGER = "challenger"


def model_uri(alias: str = CHAMPION, name: str = MODEL_NAME) -> str:
    return f"models:/{name}@{alias}"
