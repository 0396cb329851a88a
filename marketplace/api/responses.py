"""Headers the API puts on its responses: downloads, HTML pages and replayed idempotent answers."""

from __future__ import annotations

from urllib.parse import quote

__all__ = ["HTML_HEADERS", "SECURITY_HEADERS", "download_headers", "replay_headers"]

# Every response: no sniffing, no framing, no referrer.
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
                    "Cache-Control": "no-store"}
# Reports are self-contained pages (inline styles, plots as data: URIs): nothing else may load or run.
HTML_HEADERS = {"Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
                                          "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"}


def download_headers(filename: str) -> dict[str, str]:
    """``Content-Disposition: attachment`` with the file name (ASCII fallback and RFC 5987 UTF-8 form)."""
    ascii_name = "".join(ch if ch.isascii() and ch.isprintable() and ch not in '"\\' else "_" for ch in filename)
    return {"Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"}


def replay_headers(replayed: bool) -> dict[str, str]:
    """``Idempotent-Replayed: true`` on a response given again for a repeated Idempotency-Key."""
    return {"Idempotent-Replayed": "true"} if replayed else {}
