"""The README's platform table is generated from the registry: it fails here when they disagree."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.contract.integration import ConnectSpec, Integration, Profile
from sync.integrations import registry
from sync.integrations.table import BEGIN, END, platform_table, rewrite, row

README = Path(__file__).resolve().parents[3] / "README.md"


def test_the_readme_table_is_the_registry() -> None:
    text = README.read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    assert platform_table() in text, "run `python -m sync.integrations.table README.md` and commit the README"


def test_every_registered_integration_has_one_full_row() -> None:
    table = platform_table()
    for integration in registry.integrations():
        cells = row(integration)
        assert all(cells) and table.count(f"(`{integration.name}`) |") == 1, integration.name


def test_a_new_integration_changes_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    readme = README.read_text(encoding="utf-8")
    added = Integration("zzclinic", "ZZ Clinic", ConnectSpec(kinds=("route",), via=("ics",), steps=("x",)),
                        profile=Profile(reads="r", writes="w", arrives="a", setup="s"))
    monkeypatch.setitem(registry.OVERRIDES, "zzclinic", added)
    assert platform_table() not in readme
    assert "| ZZ Clinic (`zzclinic`) | route: through ICS feed (`connect ics`) | r | w | a | s |" in platform_table()
    assert rewrite(readme).count("zzclinic") == 1
    with pytest.raises(ValueError):
        rewrite("no markers here")


def test_derived_cells_follow_the_capabilities() -> None:
    bare = Integration("zzfeed", "ZZ Feed", ConnectSpec(kinds=("feed_url",), steps=("x",)))
    assert row(bare)[1:] == ("secret feed address, on the CLI", "calendar events", "mirror copies; moves and cancels",
                             "poll every CLINICBOT_SYNC_POLL_SECONDS", "nothing beyond connecting")
