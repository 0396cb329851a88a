"""Known third-party and housekeeping messages a user cannot act on, kept off stderr, precisely.

Each entry names one logger and one message; nothing else from that logger is touched, so real
warnings and errors still reach stderr. ``--verbose`` shows everything again. Every entry says why
the message is noise:

* transformers warns, once per process, that ``loss_type=None`` in a GPT-2 config is "unrecognized"
  and that it uses the default causal-LM loss: exactly the loss the demo model is meant to have.
* MLflow logs at INFO that it creates and updates its tables when it opens a fresh store: it does this
  on every fresh home, and the alembic lines after it say nothing a user can use.
* MLflow warns that a ``python_model`` object is serialised with CloudPickle: the only object pickled
  is the small wrapper class of marketplace/approx/registry_pyfunc.py, by reference (the weights are
  safetensors and JSON in the bundle), and the marketplace itself never unpickles it.
* (not here: MLflow's "Registered model ... already exists" / "Created version N" lines are printed
  outside logging, so the registry drops them where it registers, marketplace/approx/registry.py.)
* our own "database schema at REVISION" line, which every command would print: the schema is brought
  up to date silently; ``marketplace db upgrade`` reports the revision when asked.
* Prefect's INFO lines "Starting/Stopping temporary server on http://127.0.0.1:PORT": without
  PREFECT_API_URL each command runs its flows against such a server, which is gone when the command
  ends; the runs stay in ``$MKT_HOME/prefect`` (README: how to open the UI).
* MLflow's INFO line "Validating input example against model signature" when a version is logged:
  a failed validation is a warning or an error, which still shows.
* Prefect's ERROR lines "Encountered exception during execution: NotFoundError(...)" (and the task's
  "Finished in state Failed(...)") when a flow stops on one of the marketplace's own errors: the CLI
  prints that error itself, as one line with its fix (:class:`ReportedErrorFilter`). Any other
  exception in a flow still shows in full.
* Hugging Face's and MLflow's tqdm bars ("Writing model shards: 100%|...| 1/1", "Downloading
  artifacts: 100%|...| 5/5"), which draw over the marketplace's own progress display and say nothing
  about the work (``HF_HUB_DISABLE_PROGRESS_BARS`` and ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR``, read
  when those libraries are imported or download; a value the user set wins).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

__all__ = ["KNOWN_NOISE", "QUIET_ENV", "Noise", "NoiseFilter", "ReportedErrorFilter", "quiet_known_noise"]


@dataclass(frozen=True)
class Noise:
    """One message of one logger: ``logger`` is its logger's name, ``starts`` how the message starts
    (the formatted text, so a message built with ``%`` arguments or an f-string both match)."""

    logger: str
    starts: str


KNOWN_NOISE: tuple[Noise, ...] = (
    Noise("transformers.modeling_utils", "`loss_type=None` was set in the config but it is unrecognized"),
    Noise("mlflow.store.db.utils", "Creating initial MLflow database tables"),
    Noise("mlflow.store.db.utils", "Updating database tables"),
    Noise("mlflow.pyfunc", "Validating input example against model signature"),
    Noise("mlflow.pyfunc", "Passing a Python object as `python_model` causes it to be serialized using "
                           "CloudPickle"),
    Noise("marketplace.db.migrate", "database schema at "),
    Noise("prefect", "Starting temporary server on "),
    Noise("prefect", "Stopping temporary server on "),
)


# Progress bars of libraries the marketplace drives (it shows its own progress).
QUIET_ENV = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


class NoiseFilter(logging.Filter):
    """Drops the records of one logger whose message starts with one of ``starts`` (below ERROR only:
    an error is never hidden)."""

    def __init__(self, starts: tuple[str, ...]) -> None:
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is someone else's bug: let it through
            return True
        return not message.startswith(self.starts)


class ReportedErrorFilter(logging.Filter):
    """Drops Prefect's log records about a flow or task run that failed on a :class:`MarketplaceError`
    (recognised by the exception attached to the record, or by its class name in the message): the CLI
    reports that error itself, as one line (marketplace/cli/common.handle_errors)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from marketplace.errors import MarketplaceError

        if record.exc_info and isinstance(record.exc_info[1], MarketplaceError):
            return False
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is someone else's bug: let it through
            return True
        return not any(f"{name}(" in message or f"{name}: " in message for name in _marketplace_error_names())


def _marketplace_error_names() -> frozenset[str]:
    from marketplace.errors import MarketplaceError

    names, todo = set(), [MarketplaceError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return frozenset(names)


#: The Prefect loggers that report a failed flow or task run.
PREFECT_RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")

_INSTALLED: dict[str, logging.Filter] = {}


def quiet_known_noise(verbose: bool = False) -> None:
    """Install one :class:`NoiseFilter` per logger of :data:`KNOWN_NOISE` (idempotent); ``verbose``
    removes them again."""
    if not verbose:
        for key, value in QUIET_ENV.items():
            os.environ.setdefault(key, value)
    by_logger: dict[str, tuple[str, ...]] = {}
    for noise in KNOWN_NOISE:
        by_logger[noise.logger] = (*by_logger.get(noise.logger, ()), noise.starts)
    for name, starts in by_logger.items():
        logger = logging.getLogger(name)
        old = _INSTALLED.pop(name, None)
        if old is not None:
            logger.removeFilter(old)
        if not verbose:
            _INSTALLED[name] = NoiseFilter(starts)
            logger.addFilter(_INSTALLED[name])
    for name in PREFECT_RUN_LOGGERS:
        key = f"reported:{name}"
        old_filter = _INSTALLED.pop(key, None)
        if old_filter is not None:
            logging.getLogger(name).removeFilter(old_filter)
        if not verbose:
            _INSTALLED[key] = ReportedErrorFilter()
            logging.getLogger(name).addFilter(_INSTALLED[key])
