"""The integration registry: entry points match the adapter folders, load lazily, and one broken
integration never hides the others."""

from __future__ import annotations

from importlib.metadata import EntryPoint, EntryPoints, entry_points
from pathlib import Path
from typing import Any

import pytest

import adapters
from sync.contract import Refused
from sync.contract.integration import Integration
from sync.integrations import registry

ADAPTERS = Path(adapters.__file__).parent
#: Shared code every adapter may use; not a platform.
KIT = {"kit"}


def test_registered_integrations_match_the_adapter_folders() -> None:
    """Adding a platform is its folder and its line in pyproject.toml; a missing line fails here
    (after `make dev` has reinstalled the package, which it does when pyproject.toml changes)."""
    folders = {p.name for p in ADAPTERS.iterdir() if (p / "__init__.py").is_file()} - KIT
    registered = {ep.value.split(":")[0].split(".")[1] for ep in entry_points(group=registry.GROUP)}
    assert registered == folders
    for ep in entry_points(group=registry.GROUP):
        assert ep.value.startswith("adapters."), ep
        loaded = ep.load()
        assert isinstance(loaded, Integration) and loaded.name == ep.name


def test_every_integration_has_a_title_a_connect_and_unique_words() -> None:
    seen: dict[str, str] = {}
    for integration in registry.integrations():
        assert integration.title and integration.connect.kinds
        for word in integration.words:
            assert seen.setdefault(word, integration.name) == integration.name, word
    assert registry.resolve("Outlook") is registry.get("graph")
    assert registry.resolve("ical") is registry.get("ics")
    assert registry.resolve("zoom") is None


def test_a_broken_integration_never_breaks_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    real = list(entry_points(group=registry.GROUP))
    broken = EntryPoint("broken", "tests.no_such_module:INTEGRATION", registry.GROUP)

    def fake_entry_points(**select: Any) -> EntryPoints:
        return EntryPoints([*real, broken]).select(**select)

    monkeypatch.setattr(registry, "entry_points", fake_entry_points)
    monkeypatch.setattr(registry, "_failed", {})
    assert "broken" in registry.names()
    with pytest.raises(Refused, match="not installed"):
        registry.get("broken")
    assert {i.name for i in registry.integrations()} == {ep.name for ep in real}
    assert set(registry.broken()) == {"broken"}
    assert registry.get("caldav").name == "caldav"
    # asked about some integrations only (`clinicbot doctor --integration caldav`): only those count
    assert [i.name for i in registry.integrations(["caldav", "broken"])] == ["caldav"]
    assert registry.broken(["caldav"]) == {}
    assert set(registry.broken(["caldav", "broken"])) == {"broken"}


def test_unknown_integration_is_refused_with_the_known_ones() -> None:
    with pytest.raises(Refused, match="supports: Acuity Scheduling \\(acuity, squarespace\\); ") as refused:
        registry.get("zoom")
    assert all(f"({name}" in str(refused.value) for name in registry.names())


def _imports(path: Path) -> set[str]:
    import ast

    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_adapters_see_only_the_contract_and_no_web_framework() -> None:
    """Adapters get plain data: no aiohttp, no database, nothing of the core beyond sync.contract."""
    for path in sorted(ADAPTERS.rglob("*.py")):
        name = path.relative_to(ADAPTERS).as_posix()
        for module in _imports(path):
            top = module.split(".")[0]
            assert top != "aiohttp", f"{name} imports {module}"
            assert top not in ("bot", "sqlalchemy"), f"{name} imports {module}"
            if top == "sync":
                assert module == "sync.contract" or module.startswith("sync.contract."), f"{name} imports {module}"
