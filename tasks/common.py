"""What every task needs at the edge: settings, a session factory, the Prefect retry conditions.

Settings, engines and sessions come from :mod:`marketplace.runtime` (one engine per database URL per
process, shared with every other edge); which database errors deserve a retry is decided by
:mod:`marketplace.db.transient`. This module only adapts that classifier to Prefect's
``retry_condition_fn`` signature.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from marketplace.db.transient import is_retryable_idempotent_write_error, is_transient_db_error
from marketplace.runtime import current_settings, session_factory

__all__ = [
    "retry_on_idempotent_write_error", "retry_on_transient_db_error", "retry_when", "session_factory", "task_settings",
]

log = logging.getLogger(__name__)

task_settings = current_settings

RetryCondition = Callable[[Any, Any, Any], bool]


def retry_when(predicate: Callable[[BaseException], bool]) -> RetryCondition:
    """A Prefect ``retry_condition_fn`` that retries a failed task run only when ``predicate(exception)``."""

    def condition(task: Any, task_run: Any, state: Any) -> bool:
        try:
            state.result()
        except Exception as exc:
            retry = predicate(exc)
            log.info("task run %s failed with %s: %s", getattr(task_run, "name", getattr(task, "name", task)),
                     type(exc).__name__, "retrying" if retry else "not retrying")
            return retry
        return False

    condition.__name__ = f"retry_when_{predicate.__name__}"
    return condition


# Any task: only errors a fresh transaction can cure, never bad input.
retry_on_transient_db_error = retry_when(is_transient_db_error)
# Tasks that write idempotent rows (ingestion): also the unique-violation race of a concurrent writer.
retry_on_idempotent_write_error = retry_when(is_retryable_idempotent_write_error)
