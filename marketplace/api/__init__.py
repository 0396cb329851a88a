"""The marketplace as a service: an authenticated HTTP API (FastAPI) over the same core as the CLI.

``create_app(settings)`` builds the application (:mod:`marketplace.api.app`); ``marketplace api serve``
runs it with uvicorn. Who may call it: :mod:`marketplace.principals`. docs/api.md is the user's guide.
No Prefect here: a revaluation starts through the launcher the app is given (:mod:`marketplace.api.runs`).
"""

from marketplace.api.app import create_app
from marketplace.api.config import ApiLimits

__all__ = ["ApiLimits", "create_app"]
