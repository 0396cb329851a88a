"""What ``marketplace demo`` shows while it runs: each stage as it starts, a progress bar with an estimate
of the time left for the long ones (model build, labeling, training, scoring), and a log file with
every detail.

The pipeline already reports its progress in log records (the model build every 50 steps, each label
shard, each chunk of embeddings, each scoring shard) and Prefect logs the start of every flow. The
demo turns those records into stages and bars instead of printing them: :data:`SIGNALS` names each
record by its logger and its exact format string (a test checks every one still occurs in its module),
so no core module knows about the display. INFO records leave the terminal for the log file while the
display runs; warnings and errors still reach stderr.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from marketplace.names import LOG_FORMAT, InertLogFormatter

__all__ = ["FLOW_STAGES", "SIGNALS", "STAGES", "DemoProgress", "Signal", "Update"]

# The demo's stages in order, with what each does (shown when it starts).
STAGES: dict[str, str] = {
    "model": "target model",
    "corpora": "provider corpora",
    "campaign": "campaign",
    "ingest": "ingest every provider's files",
    "label": "exact LinFiK labels",
    "train": "train the approximator (ALinFiK) and run the promotion gate",
    "score": "score every sample and audit against exact LinFiK",
    "price": "price the period (a fine-tuning check of each provider first) and post to the ledger",
    "reports": "statements and the buyer report",
    "ledger": "verify the ledger",
}

# Prefect flow name -> demo stage (the revalue flow runs the others as subflows).
FLOW_STAGES = {"ingest": "ingest", "label": "label", "train": "train", "score": "score", "price": "price",
               "report": "reports"}
_FLOW_START = re.compile(r"Beginning (?:sub)?flow run '.*' for flow '(?P<flow>[\w-]+)'")


@dataclass(frozen=True)
class Update:
    """What one record says about its stage: ``done`` and/or ``total`` units, or ``advance`` units more."""

    done: int | None = None
    total: int | None = None
    advance: int = 0


@dataclass(frozen=True)
class Signal:
    """A progress record: its logger, its exact format string, the stage it drives and how its arguments
    read as an :class:`Update`. ``within``: the record only moves ``stage`` while it runs (embeddings
    are computed when training and again when scoring), never starts it."""

    logger: str
    msg: str
    stage: str
    read: Callable[[Sequence[Any]], Update]
    within: bool = False


SIGNALS: tuple[Signal, ...] = (
    Signal("marketplace.valuation.demo_model", "demo model step %d/%d: train loss %.3f", "model",
           lambda a: Update(done=int(a[0]), total=int(a[1]))),
    Signal("marketplace.valuation.runs",
           "label run %s: %d samples in %d shard(s), %d target samples, %d checkpoint(s)%s", "label",
           lambda a: Update(done=0, total=int(a[2]) * int(a[4]))),
    Signal("marketplace.valuation.gradients",
           "train shard %d/%d of checkpoint %d: %d samples in %.1f s (%.1f samples/s)", "label",
           lambda a: Update(advance=1)),
    Signal("marketplace.valuation.gradients", "train shard %d of checkpoint %d already complete: skipped", "label",
           lambda a: Update(advance=1)),
    Signal("marketplace.approx.embedding_store", "embedded %d/%d new texts", "train",
           lambda a: Update(done=int(a[0]), total=int(a[1])), within=True),
    Signal("marketplace.approx.scoring", "score run %d: %s v%s has %d samples to score in %d shards", "score",
           lambda a: Update(done=0, total=int(a[3]))),
    Signal("marketplace.approx.scoring", "score run %d: %d scores written for samples %d..%d; %d/%d done", "score",
           lambda a: Update(done=int(a[4]), total=int(a[5]))),
    Signal("marketplace.validation.gains", "validation %d/%d %s", "price",
           lambda a: Update(done=int(a[0]), total=int(a[1])), within=True),
)
_BY_KEY = {(s.logger, s.msg): s for s in SIGNALS}
_QUIET_PREFIXES = ("marketplace", "flows", "tasks", "prefect")


def _duration(seconds: float) -> str:
    """``seconds`` as people say it: "40 s", "3 min"."""
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


class _QuietInfo(logging.Filter):
    """On the terminal's handlers while the display runs: INFO and below of the pipeline and Prefect go to
    the log file only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not record.name.startswith(_QUIET_PREFIXES)


class DemoProgress(logging.Handler):
    """The demo's stage display (a context manager). ``console``: where stages and bars go (stdout, or
    stderr under ``--json``); ``log_file``: where every INFO record goes meanwhile (None: nowhere)."""

    def __init__(self, console: Console, log_file: Path | None = None, *, enabled: bool = True) -> None:
        super().__init__(level=logging.INFO)
        self.console = console
        self.log_file = log_file
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("left"), TimeRemainingColumn(), console=console,
            # A log or a pipe gets the stage lines only: bars are for a terminal.
            disable=not (enabled and console.is_terminal),
        )
        self.timings: dict[str, float] = {}
        self.current: str | None = None
        self._task: TaskID | None = None
        self._started = 0.0
        self._quarter = 0  # the last quarter of the running stage logged without a terminal
        self._file_handler: logging.Handler | None = None
        self._quiet = _QuietInfo()
        self._flows_seen: dict[str, int] = {}
        self.expected: dict[str, int] = {}  # stage -> units known in advance (e.g. providers to ingest)

    # -- stages ---------------------------------------------------------------------------------------------
    def begin(self, stage: str, detail: str = "") -> None:
        """Close the running stage and start ``stage``: a line saying what it does, and its bar."""
        if stage == self.current:
            return
        self.finish()
        self.current, self._started, self._quarter = stage, time.perf_counter(), 0
        what = STAGES.get(stage, stage) + (f": {detail}" if detail else "")
        if self.enabled:
            self.progress.console.print(f"[bold]▸[/] {what}", highlight=False)
        self._task = self.progress.add_task(f"  {stage}", total=self.expected.get(stage))

    def finish(self, note: str = "", *, failed: bool = False) -> None:
        """Close the running stage (its bar full unless it ``failed``) and record its time."""
        if self.current is None:
            return
        seconds = round(time.perf_counter() - self._started, 1)
        self.timings[self.current] = seconds
        if failed:
            if self._task is not None:
                self.progress.remove_task(self._task)
            if self.enabled:
                self.progress.console.print(f"  [red]✗[/] {self.current} stopped after {seconds:.1f} s"
                                            + (f"; the log file has the details: {self.log_file}"
                                               if self.log_file else ""), highlight=False)
            self.current, self._task = None, None
            return
        if self._task is not None:  # the ✓ line replaces the bar: only the running stage has one
            self.progress.remove_task(self._task)
        if self.enabled:
            self.progress.console.print(f"  [green]✓[/] {self.current} ({seconds:.1f} s)"
                                        + (f": {note}" if note else ""), highlight=False)
        self.current, self._task = None, None

    def apply(self, stage: str, update: Update) -> None:
        """Move ``stage``'s bar (starting the stage when the pipeline got there first)."""
        if stage != self.current:
            self.begin(stage)
        if self._task is None:
            return
        if update.total is not None:
            self.progress.update(self._task, total=update.total)
        if update.done is not None:
            self.progress.update(self._task, completed=update.done)
        if update.advance:
            self.progress.advance(self._task, update.advance)
        if self.enabled and not self.console.is_terminal:
            self._log_quarter()

    def _log_quarter(self) -> None:
        """Without a terminal (a log, a pipe) there are no bars: a line at each quarter of the stage, with
        the time left estimated from the time so far."""
        task = next((t for t in self.progress.tasks if t.id == self._task), None)
        if task is None or not task.total:
            return
        fraction = min(task.completed / task.total, 1.0)
        quarter = int(fraction * 4)
        if quarter <= self._quarter or quarter >= 4:
            return
        self._quarter = quarter
        elapsed = time.perf_counter() - self._started
        left = elapsed * (1 - fraction) / fraction if fraction > 0 else 0.0
        self.console.print(f"    {self.current} {25 * quarter}% ({task.completed:g}/{task.total:g}), about "
                           f"{_duration(left)} left", highlight=False)

    # -- logging --------------------------------------------------------------------------------------------
    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.name == "prefect.flow_runs":
                self._on_flow_start(record.getMessage())
                return
            signal = _BY_KEY.get((record.name, str(record.msg)))
            if signal is not None and isinstance(record.args, tuple):
                if signal.within and signal.stage != self.current:
                    return
                self.apply(signal.stage, signal.read(record.args))
        except Exception:  # a display problem never stops the demo
            self.handleError(record)

    def _on_flow_start(self, message: str) -> None:
        match = _FLOW_START.match(message)
        stage = FLOW_STAGES.get(match["flow"]) if match else None
        if stage is None:
            return
        self._flows_seen[stage] = self._flows_seen.get(stage, 0) + 1
        if stage == "ingest" and self.current == "ingest" and self._task is not None:
            self.progress.update(self._task, completed=self._flows_seen[stage] - 1)
            return
        self.begin(stage)

    def __enter__(self) -> DemoProgress:
        root = logging.getLogger()
        for handler in root.handlers:
            handler.addFilter(self._quiet)
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._file_handler = logging.FileHandler(self.log_file, encoding="utf-8")
            self._file_handler.setLevel(logging.INFO)
            self._file_handler.setFormatter(InertLogFormatter(LOG_FORMAT))
            root.addHandler(self._file_handler)
        for name in ("marketplace", "prefect.flow_runs"):
            logging.getLogger(name).addHandler(self)
        self.progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.finish(failed=exc_type is not None)
        self.progress.stop()
        for name in ("marketplace", "prefect.flow_runs"):
            logging.getLogger(name).removeHandler(self)
        root = logging.getLogger()
        if self._file_handler is not None:
            root.removeHandler(self._file_handler)
            self._file_handler.close()
        for handler in root.handlers:
            handler.removeFilter(self._quiet)
