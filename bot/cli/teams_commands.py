"""`clinicbot teams package` (the Teams app zip) and `clinicbot teams icons` (redraw the icons)."""

from __future__ import annotations

from pathlib import Path

import click

from bot.cli import get_settings
from bot.cli.output import fail

__all__ = ["teams"]


@click.group()
def teams() -> None:
    """Microsoft Teams app tools."""


@teams.command("package")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("clinicbot-teams.zip"),
    show_default=True,
    help="Where to write the zip.",
)
def package(output: Path) -> None:
    """Build the Teams app package with this deployment's app id and domain."""
    from bot.teams.package import PackageError, build_package  # lazy: it loads the Teams SDK (botbuilder)

    try:
        path = build_package(get_settings(), output)
    except PackageError as exc:
        fail(str(exc), code=2)
        return
    click.echo(f"wrote {path}: upload it in Teams (Apps > Manage your apps > Upload an app)")


@teams.command("icons")
def icons() -> None:
    """Redraw manifest/teams/color.png and outline.png."""
    from bot.teams.icons import write_icons  # lazy: bot.teams loads the Teams SDK (botbuilder)
    from bot.teams.package import MANIFEST_DIR  # lazy: as above

    for path in write_icons(MANIFEST_DIR):
        click.echo(f"wrote {path}")
