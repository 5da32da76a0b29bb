"""`clinicbot doctor`: one ✓ or ✗ line per check, with a hint on every ✗."""

from __future__ import annotations

import asyncio

import click


def _line(ok: bool | None, label: str, hint: str = "") -> None:
    mark = "✓" if ok else ("-" if ok is None else "✗")
    text = f"{mark} {label}"
    if hint and not ok:
        text += f"  — {hint}"
    click.echo(text)


@click.command()
def doctor() -> None:
    """Check configuration, database, migrations, key, front ends and providers."""
    from sync.runtime.settings import ConfigError, load_settings

    failures = 0
    try:
        settings = load_settings()
    except ConfigError as exc:
        _line(False, "configuration", str(exc))
        raise SystemExit(1) from None
    _line(True, "configuration is valid")

    from sync.boot import open_core
    from sync.store.crypto import KeyError_
    from sync.store.database import StoreError

    try:
        core = open_core(settings)
        _line(True, "secret key loaded" + ("" if settings.secret_key else f" from {settings.secret_key_file}"))
    except KeyError_ as exc:
        _line(False, "secret key", str(exc))
        raise SystemExit(1) from None

    async def db_checks() -> int:
        bad = 0
        try:
            state = await core.store.schema_state()
            _line(True, f"database reachable ({core.store.engine.dialect.name})")
            if state.up_to_date:
                _line(True, f"schema is current ({state.head})")
            else:
                bad += 1
                _line(False, f"schema is at {state.current or 'nothing'}, needs {state.head}",
                      "run `clinicbot db upgrade`")
            if state.current is not None:
                from sqlalchemy import select

                from sync.store.model import Connection

                async with core.store.session() as s:
                    try:
                        for conn in (await s.scalars(select(Connection))).all():
                            _ = conn.credentials
                        _line(True, "credentials decrypt with this key")
                    except KeyError_ as exc:
                        bad += 1
                        _line(False, "credentials do not decrypt", str(exc))
        except StoreError as exc:
            bad += 1
            _line(False, "database", f"{exc}; check CLINICBOT_DATABASE_URL")
        finally:
            await core.close()
        return bad

    failures += asyncio.run(db_checks())
    _line(settings.teams_auth_enabled, "Teams: authentication " + ("on" if settings.teams_auth_enabled else "OFF"),
          "set MicrosoftAppId and MicrosoftAppPassword before exposing the bot")
    _line(settings.slack_enabled or None, "Slack " + ("configured" if settings.slack_enabled else "not configured"),
          "set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN (or SLACK_CLIENT_ID/SECRET)")
    _line(settings.graph_enabled or None,
          "Microsoft Graph " + ("configured" if settings.graph_enabled else "not configured"),
          "set CLINICBOT_GRAPH_CLIENT_ID and CLINICBOT_GRAPH_CLIENT_SECRET")
    _line(settings.google_enabled or None,
          "Google Calendar " + ("configured" if settings.google_enabled else "not configured"),
          "set CLINICBOT_GOOGLE_CLIENT_ID and CLINICBOT_GOOGLE_CLIENT_SECRET")
    _line(True, "CalDAV, iCloud and ICS feeds need no app registration")
    _line(bool(settings.public_url) or None, "public URL " + (settings.public_url or "not set"),
          "set CLINICBOT_PUBLIC_URL for OAuth redirects and webhooks")
    raise SystemExit(1 if failures else 0)
