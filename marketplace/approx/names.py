"""The registered model name of a campaign (one model per campaign, its versions behind aliases).

The rule lives in :func:`marketplace.names.registry_model_name` (campaign creation checks it is free);
this module keeps the approximator's name for it.
"""

from __future__ import annotations

from marketplace.names import registry_model_name as model_name_for

__all__ = ["model_name_for"]
