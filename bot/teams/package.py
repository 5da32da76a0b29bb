"""The Teams app package: manifest/teams/manifest.json with this deployment's ids and domain, plus
the two icons, zipped the way Teams' "Upload a custom app" expects (files at the zip's root).

The committed manifest is a template: its ids are the all-zero GUID, which `build_manifest`
replaces from MicrosoftAppId and CLINICBOT_PUBLIC_URL (and refuses to ship unreplaced). The bot's
command lists are regenerated from the shared grammar, so they cannot drift from what the bot
understands.
"""

from __future__ import annotations

import copy
import json
import re
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bot.commands.grammar import GRAMMAR
from bot.teams.icons import png_size
from sync.runtime.settings import Settings

__all__ = ["MANIFEST_DIR", "PackageError", "build_manifest", "build_package", "command_list", "load_template"]

#: manifest/teams in a checkout (through the bot/teams/manifest link); package data once installed.
MANIFEST_DIR = Path(__file__).resolve().parent / "manifest"
PLACEHOLDER_ID = "00000000-0000-0000-0000-000000000000"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
#: Teams shows at most 12 commands per command list (manifest schema v1.30).
MAX_COMMANDS = 12
_BOT_SCOPES = ["personal", "team", "groupChat"]


class PackageError(Exception):
    """The package cannot be built from these settings; the message names what to set."""


def command_list() -> list[dict[str, str]]:
    """The bot's commands for the manifest, from the shared grammar (help first)."""
    commands = [
        {
            "title": spec.name,
            "description": f"{spec.summary[:1].upper()}{spec.summary[1:]}, e.g. {spec.example}",
        }
        for spec in GRAMMAR
    ]
    return commands[:MAX_COMMANDS]


def load_template(folder: Path = MANIFEST_DIR) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    return data


def build_manifest(settings: Settings, template: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest for this deployment (raises PackageError when a needed setting is missing)."""
    app_id = settings.microsoft_app_id or ""
    if not _GUID.match(app_id) or app_id == PLACEHOLDER_ID:
        raise PackageError(
            "MicrosoftAppId must be set to the bot's Entra app id (a GUID) to build the package"
        )
    if not settings.public_url:
        raise PackageError("CLINICBOT_PUBLIC_URL must be set (the https address Teams reaches the bot at)")
    host = urlsplit(settings.public_url).hostname or ""
    if not settings.public_url.startswith("https://"):
        raise PackageError("CLINICBOT_PUBLIC_URL must be an https URL for Teams")
    manifest = copy.deepcopy(template if template is not None else load_template())
    manifest["id"] = app_id
    commands = command_list()
    for bot in manifest.get("bots", []):
        bot["botId"] = app_id
        bot["scopes"] = list(_BOT_SCOPES)
        bot["commandLists"] = [{"scopes": list(_BOT_SCOPES), "commands": commands}]
    domains = [d for d in manifest.get("validDomains", []) if d not in ("clinicbot.example.org",)]
    manifest["validDomains"] = list(dict.fromkeys([host, *domains]))
    manifest["webApplicationInfo"] = {"id": app_id, "resource": f"api://{host}/{app_id}"}
    developer = manifest.setdefault("developer", {})
    for key, path in (("websiteUrl", "/"), ("privacyUrl", "/privacy"), ("termsOfUseUrl", "/terms")):
        if str(developer.get(key, "")).startswith("https://clinicbot.example.org"):
            developer[key] = settings.public_url + path
    return manifest


def build_package(settings: Settings, out: Path, folder: Path = MANIFEST_DIR) -> Path:
    """Write the app zip to `out` and return it."""
    manifest = build_manifest(settings, load_template(folder))
    icons = manifest["icons"]
    expected = {icons["color"]: (192, 192), icons["outline"]: (32, 32)}
    blobs: dict[str, bytes] = {}
    for name, size in expected.items():
        data = (folder / name).read_bytes()
        width, height, colour = png_size(data)
        if (width, height) != size:
            raise PackageError(f"{name} is {width}x{height}, Teams needs {size[0]}x{size[1]}")
        if name == icons["outline"] and colour != 6:
            raise PackageError(f"{name} must have an alpha channel (transparent background)")
        blobs[name] = data
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(manifest, indent=2) + "\n")
        for name, data in blobs.items():
            archive.writestr(name, data)
    return out
