"""Which adapter package serves which provider name; imported lazily so a missing optional
dependency of one adapter never breaks the others."""

from __future__ import annotations

import importlib
from typing import cast

from sync.contract import AdapterModule, Refused

__all__ = ["CALENDAR_PROVIDERS", "adapter_for"]

#: provider name -> module implementing AdapterModule
CALENDAR_PROVIDERS: dict[str, str] = {
    "caldav": "adapters.caldav",
    "icloud": "adapters.caldav",
    "ics": "adapters.ics",
    "graph": "adapters.graph",
    "google": "adapters.google",
}


def adapter_for(provider: str) -> AdapterModule:
    """The adapter module for a provider name; Refused for an unknown one."""
    try:
        module_name = CALENDAR_PROVIDERS[provider]
    except KeyError:
        known = ", ".join(sorted(CALENDAR_PROVIDERS))
        raise Refused(f"unknown calendar provider {provider!r}; known: {known}") from None
    return cast(AdapterModule, importlib.import_module(module_name))
