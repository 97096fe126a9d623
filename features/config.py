"""Typed configuration: one TOML file plus ``DROPOUT_RISK_`` environment variables.

Each package reads only its own section; ``ProjectSettings`` carries the
sections every entry point needs (the feature definition and any instruments
the user declares), and ``training``/``serving`` extend it with their own.
The file is ``--config F``, else ``$DROPOUT_RISK_CONFIG``, else
``./dropout-risk.toml`` when present; without one, the defaults below apply.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar, overload

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from dropout_risk.features.instruments import Instrument, InstrumentRegistry, default_registry

DEFAULT_CONFIG_FILE = Path("dropout-risk.toml")
CONFIG_ENV_VAR = "DROPOUT_RISK_CONFIG"


class FeatureConfig(BaseModel):
    """How landmark features are built; stored with every trained model."""

    model_config = ConfigDict(extra="forbid")

    max_landmark: int = Field(default=8, ge=1, le=52, description="last session k that gets a feature row")
    off_track_z: float = Field(
        default=1.0,
        gt=0,
        description="a score more than this many residual SDs below its expected trajectory is off track",
    )
    # Episode columns that hold codes, not quantities (a site number, a 1/2/3 treatment arm): categories
    # even when every value is a number. A name not among the episode columns is ignored.
    categorical_covariates: list[str] = Field(
        default_factory=list, description="episode columns to treat as categories even when numeric"
    )


# Every top-level key any command reads. One file serves every command, so a command ignores the
# sections of the others, but a key no command knows is a typo and is refused. Inside a section,
# each command's own models refuse unknown keys.
KNOWN_TOP_LEVEL = frozenset(
    {
        "features",
        "instruments",
        "training",
        "gate",
        "evaluation",
        "compare",
        "serving",
        "monitoring",
        "database_url",
        "admin_key",
        "fhir",
        "cds_hooks",
        "webhooks",
    }
)


class ProjectSettings(BaseSettings):
    """Settings shared by every entry point."""

    model_config = SettingsConfigDict(env_prefix="DROPOUT_RISK_", env_nested_delimiter="__", extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _known_sections(cls, data: object) -> object:
        if isinstance(data, dict):
            unknown = sorted(set(data) - KNOWN_TOP_LEVEL)
            if unknown:
                known = ", ".join(sorted(KNOWN_TOP_LEVEL))
                raise ValueError(f"unknown setting(s) {', '.join(unknown)}; known: {known}")
        return data

    features: FeatureConfig = FeatureConfig()
    # Scales a clinic or trial uses that we do not ship (PANSS, ECBI, BDI-II, ...).
    instruments: list[Instrument] = Field(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = settings_cls.model_config.get("toml_file")
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    def registry(self) -> InstrumentRegistry:
        return default_registry().with_extra(self.instruments)


S = TypeVar("S", bound=ProjectSettings)


class ConfigFileError(ValueError):
    pass


def resolve_config_file(config_file: Path | None = None) -> Path | None:
    """The config file to read, or None to run on defaults."""
    if config_file is None and os.environ.get(CONFIG_ENV_VAR):
        config_file = Path(os.environ[CONFIG_ENV_VAR])
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigFileError(f"config file {config_file} does not exist")
        return config_file
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


@overload
def load_settings() -> ProjectSettings: ...
@overload
def load_settings(settings_cls: type[S], config_file: Path | None = None) -> S: ...


def load_settings(
    settings_cls: type[ProjectSettings] = ProjectSettings, config_file: Path | None = None
) -> ProjectSettings:
    """Read settings once, at the edge, and pass them in from there (typed as the class asked for)."""
    path = resolve_config_file(config_file)
    bound = type(
        settings_cls.__name__,
        (settings_cls,),
        {
            "model_config": SettingsConfigDict(**{**settings_cls.model_config, "toml_file": path}),
        },
    )
    return bound()
