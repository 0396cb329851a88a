"""The web portal: server-rendered pages (Jinja2, no build step, nothing fetched from elsewhere) for
providers, buyers and the operator, mounted under ``/portal`` of the HTTP API's app and calling the same
core functions. Sessions: :mod:`.sessions`; headers and cookies: :mod:`.security`; pages: ``pages_*``."""

from marketplace.api.portal.app import PORTAL_PREFIX, PORTAL_UPLOAD_PATH, create_portal, mount_portal

__all__ = ["PORTAL_PREFIX", "PORTAL_UPLOAD_PATH", "create_portal", "mount_portal"]
