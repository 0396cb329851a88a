"""The ``validate`` flow: the same core call as the CLI, with a Markdown artifact."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.models import build_tiny_model
from tests.support.validation import seed_scored_campaign


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.getbasetemp())


def test_validate_flow_writes_the_report_and_an_artifact(prefect_harness: None, mkt_home: Path, model_dir: Path,
                                                         tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client

    from flows.validate import validate
    from marketplace.cli.common import open_db

    seed_scored_campaign(open_db()[1], model_dir, priced=True)
    out = validate("tiny", str(tmp_path / "v"), {"per_provider": 3, "seeds": [0]})
    assert out["result"]["pricing_run_id"] > 0 and set(out["files"]) == {"html", "csv", "md", "json"}
    assert all(Path(p).is_file() for p in out["files"].values())

    async def read() -> list[str]:
        async with get_client() as client:
            return [a.key for a in await client.read_artifacts() if a.key]

    import asyncio

    keys = asyncio.run(read())
    assert any(k.startswith("validation-") for k in keys)
