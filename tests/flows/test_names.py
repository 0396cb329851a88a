"""Naming conventions of the Prefect edge, so that a name seen in the Prefect UI leads to its code.

- A flow is registered under its file's name, and its function has that name too: ``flows/price.py``
  holds ``@flow(name="price") def price``; every deployment's entrypoint is ``flows/<name>.py:<name>``.
- A task is registered under a kebab-case ``verb-noun`` name and its function is the same words in
  snake_case with a ``_task`` suffix (``plan-scores`` -> ``plan_scores_task``), so that it never shadows
  the core function it wraps.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from prefect import Flow, Task

from marketplace.deployments import default_prefect_yaml, load_deployment_specs

ROOT = Path(__file__).resolve().parents[2]
FLOW_MODULES = sorted(p.stem for p in (ROOT / "flows").glob("*.py") if p.stem not in {"__init__", "runners"})
TASK_MODULES = sorted(p.stem for p in (ROOT / "tasks").glob("*.py") if p.stem not in {"__init__", "common"})
KEBAB = re.compile(r"^[a-z]+(-[a-z]+)+$")


@pytest.mark.parametrize("stem", FLOW_MODULES)
def test_flow_is_named_after_its_file(stem: str) -> None:
    module = importlib.import_module(f"flows.{stem}")
    flows = {name: obj for name, obj in vars(module).items() if isinstance(obj, Flow) and obj.fn.__module__ ==
             module.__name__}
    assert list(flows) == [stem], f"flows/{stem}.py must define exactly one flow, named {stem}: {list(flows)}"
    assert flows[stem].name == stem and flows[stem].fn.__name__ == stem
    assert module.__all__ == [stem]


@pytest.mark.parametrize("stem", TASK_MODULES)
def test_tasks_are_verb_noun_with_a_task_suffix(stem: str) -> None:
    module = importlib.import_module(f"tasks.{stem}")
    tasks = [obj for obj in vars(module).values() if isinstance(obj, Task) and obj.fn.__module__ == module.__name__]
    for task in tasks:
        assert KEBAB.match(task.name), f"task {task.name!r} is not a kebab-case verb-noun name"
        assert task.fn.__name__ == task.name.replace("-", "_") + "_task", (task.name, task.fn.__name__)


def test_deployments_name_their_flow_by_file() -> None:
    specs = load_deployment_specs(default_prefect_yaml())
    assert specs
    for spec in specs:
        path, _, attribute = spec.entrypoint.partition(":")
        assert path == f"flows/{attribute}.py", spec.entrypoint
        assert attribute in FLOW_MODULES, spec.entrypoint
