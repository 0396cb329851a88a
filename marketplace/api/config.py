"""The service's limits, in one frozen object handed to :func:`marketplace.api.app.create_app`.

Why each exists: a client may send a body without end (``max_body_bytes``, ``max_upload_bytes``), guess
tokens (``auth_failures`` per ``auth_window_s`` per client address) or hold a worker (``request_timeout_s``).
The upload limit is also capped by the ingestion's own file-size limit (``MKT_MAX_FILE_BYTES``): the API
never accepts a file that ``marketplace ingest`` would refuse for its size.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MULTIPART_OVERHEAD_BYTES", "ApiLimits"]

MULTIPART_OVERHEAD_BYTES = 64 * 1024  # boundaries and the small form fields around an uploaded file


@dataclass(frozen=True)
class ApiLimits:
    """``max_body_bytes``: any request body but an upload; ``max_upload_bytes``: an uploaded file (provider
    data, campaign target data); ``request_timeout_s``: the longest a request may take before the client gets
    504 (work already running in a thread finishes; see docs/api.md); ``auth_failures`` wrong or revoked
    tokens within ``auth_window_s`` from one address before that address gets 429 for the rest of the window;
    ``upload_chunk_bytes``: how much of an upload is held in memory at once; ``max_concurrency``: requests
    uvicorn serves at once before it answers 503."""

    max_body_bytes: int = 1024 * 1024
    max_upload_bytes: int = 256 * 1024 * 1024
    request_timeout_s: float = 300.0
    auth_failures: int = 10
    auth_window_s: float = 60.0
    upload_chunk_bytes: int = 1024 * 1024
    max_concurrency: int = 64

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_upload_bytes", "auth_failures", "upload_chunk_bytes", "max_concurrency"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.request_timeout_s <= 0 or self.auth_window_s <= 0:
            raise ValueError("request_timeout_s and auth_window_s must be positive")
