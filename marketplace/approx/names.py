"""The registered model name of a campaign (one model per campaign, its versions behind aliases)."""

from __future__ import annotations

import re

__all__ = ["model_name_for"]


def model_name_for(campaign_name: str) -> str:
    """``alinfik-<slug>``: lower-case, runs of other characters replaced by '-'."""
    slug = re.sub(r"[^a-z0-9]+", "-", campaign_name.lower()).strip("-") or "campaign"
    return f"alinfik-{slug}"
