"""The shared edge: :class:`~marketplace.settings.Settings` turned into what every entry point needs.

The CLI, the Prefect tasks and any other edge (an HTTP server) get from here, and only from here:

* :func:`apply_offline_env`: the process-wide switches that keep hubs and telemetry off;
* :func:`current_settings`: the settings of this process, read from the environment once;
* :func:`require_store`: the one check that a store exists, for commands that only read;
* :func:`engine_for` / :func:`session_factory`: one engine per database URL per process (engines are
  thread-safe; sessions are not, so each unit of work opens its own), the schema brought up to date
  once, the data folders created;
* :func:`use_prefect_home`: where Prefect records flow runs when no server is named (``$MKT_HOME/prefect``);
* :func:`model_registry`: the MLflow model registry the settings name (a fresh embedded store keeps
  even its default experiment's artifacts under ``MKT_HOME``, see
  :func:`marketplace.approx.registry.create_local_store`);
* :func:`resolve_device`: the torch device to run on (``MKT_DEVICE`` when nothing is asked);
* :func:`ingest_parameters` (:func:`ingest_limits`, :func:`dedup_params`): the ingestion parameter objects.

No Prefect here, and no core module imports this one: the core takes values. This is the one module of
the package besides ``settings.py`` that touches the process environment (it only sets defaults).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from marketplace.errors import ConfigError
from marketplace.settings import Settings, get_settings

if TYPE_CHECKING:
    from marketplace.approx.registry import MlflowRegistry
    from marketplace.db.screening import Screener
    from marketplace.ingest import DedupParams, IngestLimits

__all__ = [
    "OFFLINE_ENV",
    "apply_offline_env",
    "current_settings",
    "dedup_params",
    "engine_for",
    "ingest_limits",
    "ingest_parameters",
    "model_registry",
    "require_store",
    "reset",
    "resolve_device",
    "session_factory",
    "use_prefect_home",
]

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    # MLflow prints "View run ... at: URL" to stdout with an HTTP tracking server; --json needs stdout clean.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    # The temporary Prefect server migrates a fresh database before it answers; Prefect waits 20 s by
    # default, which a busy 2-core machine exceeded once (a fresh `marketplace demo --small` failed).
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


def apply_offline_env(environ: MutableMapping[str, str] | None = None) -> None:
    """Nothing is ever downloaded from a hub: pin the offline switches unless the user set them.

    ``environ``: the mapping to update (default: this process's environment)."""
    target = os.environ if environ is None else environ
    for key, value in OFFLINE_ENV.items():
        target.setdefault(key, value)


@functools.lru_cache(maxsize=1)
def current_settings() -> Settings:
    """This process's settings, read from the ``MKT_`` environment on first use (see :func:`reset`)."""
    return get_settings()


_LOCK = threading.Lock()
_ENGINES: dict[str, Engine] = {}
_UPGRADED: set[str] = set()


def engine_for(url: str, *, upgrade: bool = True) -> Engine:
    """The engine of ``url`` (one per URL per process); with ``upgrade`` the schema is brought to the
    latest revision the first time (a no-op when current), so embedded use just works."""
    from sqlalchemy.exc import ArgumentError, DBAPIError

    from marketplace.db import create_db_engine
    from marketplace.db.migrate import upgrade as upgrade_schema

    with _LOCK:  # one engine and one migration per URL, also when tasks on a thread pool ask at once
        engine = _ENGINES.get(url)
        if engine is None:
            try:
                engine = _ENGINES[url] = create_db_engine(url)
            except (ArgumentError, ValueError) as exc:
                raise database_error(url, exc) from None
        if upgrade and url not in _UPGRADED:
            try:
                upgrade_schema(engine)
            except DBAPIError as exc:
                raise database_error(url, exc) from None
            _UPGRADED.add(url)
        return engine


def database_error(url: str, exc: BaseException) -> ConfigError:
    """A database that cannot be parsed or reached, as a one-line ConfigError whose URL and text carry no
    password (:func:`marketplace.settings.redact_secrets`)."""
    from sqlalchemy.exc import ArgumentError, DBAPIError

    from marketplace.settings import redact_secrets

    if isinstance(exc, ArgumentError | ValueError) and not isinstance(exc, DBAPIError):
        return ConfigError(f"the database URL {redact_secrets(url)!r} is not valid ({redact_secrets(str(exc))}); "
                           "set MKT_DATABASE_URL to a SQLAlchemy URL such as "
                           "postgresql+psycopg://USER@HOST:5432/DB (percent-encode special characters)")
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return ConfigError(f"cannot use the database at {redact_secrets(url)}: "
                       f"{redact_secrets(' '.join(line.strip() for line in reason[:2]))}; "
                       "start the server or fix MKT_DATABASE_URL (host, port, user, password, database)")


def sqlite_file(url: str) -> Path | None:
    """The database file of a file-backed SQLite URL (absolute), else None (a server, ``:memory:``)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise database_error(url, exc) from None
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database).expanduser().resolve()


def require_store(settings: Settings | None = None) -> None:
    """Raise ConfigError when the settings' SQLite database file does not exist, saying where it looked and
    how to point at a store: read-only commands call this instead of creating an empty home."""
    cfg = settings or current_settings()
    path = sqlite_file(cfg.resolved_database_url)
    if path is None or path.exists():
        return
    if cfg.database_url is not None:
        raise ConfigError(f"no marketplace database at {path} (named by MKT_DATABASE_URL); point MKT_DATABASE_URL "
                          "at an existing database, or create it with `marketplace db upgrade`")
    raise ConfigError(
        f"no marketplace home at {cfg.home} (home {cfg.home_origin}): nothing was created; run from the folder "
        "that holds your .marketplace, set MKT_HOME to its absolute path, or start one with `marketplace demo` "
        "or `marketplace db upgrade`")


def session_factory(settings: Settings | None = None) -> sessionmaker[Session]:
    """Sessions on the settings' database (schema up to date, data folders created). The caller owns
    each session and its transaction."""
    from marketplace.db import make_session_factory

    cfg = settings or current_settings()
    cfg.ensure_home()
    return make_session_factory(engine_for(cfg.resolved_database_url))


def reset() -> None:
    """Forget the cached settings and dispose every engine (tests that change the environment)."""
    current_settings.cache_clear()
    with _LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()
        _UPGRADED.clear()


def use_prefect_home(settings: Settings | None = None,
                     environ: MutableMapping[str, str] | None = None) -> Path | None:
    """Record this process's Prefect runs under ``$MKT_HOME/prefect``; returns that folder, or None when
    ``PREFECT_API_URL`` names a server (the runs are there).

    Without a server each process runs its flows against a temporary local one whose database lives in
    ``PREFECT_HOME`` (default ``~/.prefect``): every command (demo, revalue, serve, label...) must point
    at the same folder, or ``prefect server start`` shows only some of the runs. A ``PREFECT_HOME`` the
    user set wins. Call it before Prefect is imported (Prefect reads its settings once)."""
    target = os.environ if environ is None else environ
    if target.get("PREFECT_API_URL"):
        return None
    cfg = settings or current_settings()
    target.setdefault("PREFECT_HOME", str(cfg.home / "prefect"))
    return Path(target["PREFECT_HOME"])


def model_registry(settings: Settings | None = None) -> MlflowRegistry:
    """The MLflow registry of the settings; an explicit artifact root only for local stores (a tracking
    server decides where artifacts go unless MKT_MLFLOW_ARTIFACT_ROOT says otherwise)."""
    from marketplace.approx.registry import MlflowRegistry, create_local_store

    cfg = settings or current_settings()
    uri = cfg.resolved_mlflow_tracking_uri
    local = not uri.startswith(("http://", "https://", "databricks"))
    root = cfg.mlflow_artifact_root or (cfg.resolved_mlflow_artifact_root if local else None)
    path = sqlite_file(uri) if root is not None and uri.startswith("sqlite:") else None
    # a fresh embedded store: its default experiment under the home
    if path is not None and root is not None and not path.exists():
        create_local_store(uri, root, path)
    return MlflowRegistry(uri, root)


def resolve_device(requested: str | None, settings: Settings | None = None) -> str:
    """The torch device to run on: ``requested``, or ``MKT_DEVICE`` when None.

    ``auto`` is ``cuda`` when a GPU is visible, else ``cpu``; anything else must be a torch device
    (``cpu``, ``cuda``, ``cuda:N``, ...). Asking for CUDA where there is none is a ConfigError here,
    before any work starts, rather than a torch error half-way. Returns the canonical name."""
    name = requested if requested is not None else (settings or current_settings()).device
    if name == "cpu":
        return name  # the common case needs no torch import
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device {name!r} is not a torch device; pass cpu, cuda, cuda:N or auto "
                          "(--device, or MKT_DEVICE)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name} asks for CUDA but no GPU is visible here; pass --device cpu "
                          "(or set MKT_DEVICE=cpu / auto)")
    return str(device)


def ingest_limits(settings: Settings | None = None) -> IngestLimits:
    """The ingestion limits of the settings (file sizes, text lengths, quarantine fraction, batch size)."""
    from marketplace.ingest import IngestLimits

    return IngestLimits.from_settings(settings or current_settings())


def dedup_params(near_duplicates: bool | None = None, settings: Settings | None = None) -> DedupParams | None:
    """The MinHash parameters of near-duplicate linking, or None when it is off (``near_duplicates``
    None follows ``MKT_NEAR_DUPLICATES``)."""
    from marketplace.ingest import DedupParams

    cfg = settings or current_settings()
    use_near = cfg.near_duplicates if near_duplicates is None else near_duplicates
    return DedupParams.from_settings(cfg) if use_near else None


def ingest_parameters(near_duplicates: bool | None = None,
                      settings: Settings | None = None) -> tuple[IngestLimits, DedupParams | None]:
    """Both parameter objects of an ingestion: :func:`ingest_limits` and :func:`dedup_params`.

    Raises pydantic's ValidationError when the settings hold an invalid combination (the caller names
    the options)."""
    cfg = settings or current_settings()
    return ingest_limits(cfg), dedup_params(near_duplicates, cfg)


def pricing_screener(device: str | None = None, settings: Settings | None = None,
                     progress: Callable[[int, int, str], None] | None = None) -> Screener:
    """The ``screener`` that :func:`marketplace.pricing.runner.run_pricing` calls for its fine-tuning check,
    on the resolved ``device`` with the measurement cache folder shared with ``marketplace validate``.
    The CLI, the ``price`` task and the API all price through this."""
    from marketplace.validation.cache import measurement_cache_dir
    from marketplace.validation.screening import screener

    cfg = settings or current_settings()
    return screener(device=resolve_device(device, cfg), cache_dir=measurement_cache_dir(cfg), progress=progress)
