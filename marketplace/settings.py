"""The one settings object, read from the environment (prefix ``MKT_``) at the edge.

Core functions never read ``os.environ``: the CLI and the flows build a :class:`Settings` once and
hand plain values (or small frozen parameter objects) to the core.

Embedded defaults put everything under one data folder, ``MKT_HOME`` (default ``./.marketplace``):
the SQLite database, the MLflow store (SQLite backend + artifact folder) and artifacts. The home is
resolved to an absolute path once, when the settings are read (a relative ``MKT_HOME`` and the default
are relative to the folder the process started in); :attr:`Settings.home_origin` says which it was.
Only commands that put data in create the home (``ensure_home``); read-only ones require it
(:func:`marketplace.runtime.require_store`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings", "redact_secrets", "redact_url"]


class Settings(BaseSettings):
    """Every ``MKT_`` setting. ``infra/.env.example`` lists them with their defaults."""

    model_config = SettingsConfigDict(env_prefix="MKT_", extra="ignore", frozen=True)

    home: Path = Field(default=Path(".marketplace"), description="Data folder for embedded defaults.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///$MKT_HOME/marketplace.db."
    )
    mlflow_tracking_uri: str | None = Field(
        default=None, description="MLflow tracking URI; default sqlite:///$MKT_HOME/mlflow.db."
    )
    mlflow_artifact_root: str | None = Field(
        default=None, description="MLflow artifact root for new experiments; default $MKT_HOME/mlruns."
    )
    artifacts_dir: Path | None = Field(default=None, description="Artifacts folder; default $MKT_HOME/artifacts.")
    models_dir: Path | None = Field(
        default=None, description="Cache of built target models; default $MKT_HOME/models."
    )

    # Ingestion limits (see marketplace.ingest.params for what each one guards against).
    max_file_bytes: int = Field(default=4 * 1024**3, gt=0)
    max_uncompressed_bytes: int = Field(default=16 * 1024**3, gt=0)
    max_compression_ratio: float = Field(default=200.0, gt=1.0)
    max_archive_members: int = Field(default=1000, gt=0)
    min_text_chars: int = Field(default=16, ge=1)
    max_text_chars: int = Field(default=100_000, gt=1)
    max_line_bytes: int = Field(default=8 * 1024**2, gt=0)
    max_quarantine_fraction: float = Field(default=0.2, ge=0.0, le=1.0)
    ingest_batch_size: int = Field(default=20_000, gt=0)
    near_duplicates: bool = Field(default=True, description="Link near-duplicates with MinHash LSH.")
    near_duplicate_threshold: float = Field(default=0.7, gt=0.0, le=1.0)
    minhash_num_perm: int = Field(default=128, ge=16)

    # Orchestration.
    task_runner: Literal["thread", "dask"] = "thread"
    dask_address: str | None = Field(default=None, description="Dask scheduler address; None = local cluster.")
    max_workers: int = Field(default=2, ge=1)

    # Valuation defaults.
    device: str = Field(default="cpu", description="Torch device for valuation: cpu, cuda, cuda:0, auto.")
    seed: int = 0

    log_level: str = "INFO"

    @field_validator("home", mode="after")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def home_origin(self) -> str:
        """How the home was chosen, for every command that states it."""
        if "home" in self.model_fields_set:
            return "set by MKT_HOME"
        return "the default ./.marketplace of the folder the command ran in; set MKT_HOME to choose another"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'marketplace.db'}"

    @property
    def resolved_mlflow_tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def resolved_mlflow_artifact_root(self) -> str:
        return self.mlflow_artifact_root or (self.home / "mlruns").as_uri()

    @property
    def resolved_artifacts_dir(self) -> Path:
        return self.artifacts_dir or self.home / "artifacts"

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir or self.home / "models"

    def ensure_home(self) -> None:
        """Create the data folders the embedded defaults need."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.resolved_artifacts_dir.mkdir(parents=True, exist_ok=True)
        self.resolved_models_dir.mkdir(parents=True, exist_ok=True)


def get_settings(**overrides: object) -> Settings:
    """Read settings from the environment; keyword overrides win (used by the CLI and tests)."""
    return Settings(**overrides)  # type: ignore[arg-type]


# scheme://user:password@host — the password runs to the last "@" of the authority (it may hold "@").
_USERINFO_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s]*):[^/\s]*@")
# ?password=... / &token=... in a query string, or password=... in a libpq key=value string.
_SECRET_QUERY = re.compile(r"(?P<head>\b(?:password|passwd|pwd|pass|token|access_token|secret|api_key|apikey)=)"
                           r"[^&#\s'\"]*", re.IGNORECASE)
REDACTED = "***"


def redact_secrets(text: str) -> str:
    """``text`` with the password of every URL in it (userinfo or a secret query parameter) replaced by
    ``***``: the one redaction for anything shown (status, error messages, logs). Database and MLflow
    URLs alike; the user name, host, port and path stay, so the message still says where it looked."""
    text = _USERINFO_PASSWORD.sub(lambda m: f"{m['head']}:{REDACTED}@", text)
    return _SECRET_QUERY.sub(lambda m: f"{m['head']}{REDACTED}", text)


def redact_url(url: str | None) -> str | None:
    """A database or MLflow URL fit to show: :func:`redact_secrets` of it (None stays None)."""
    return None if url is None else redact_secrets(str(url))
