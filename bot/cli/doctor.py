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
    from sync.integrations import registry
    from sync.runtime.settings import ConfigError, load_settings

    failures = 0
    try:
        settings = load_settings()
        registry.check_settings(settings)
    except ConfigError as exc:
        _line(False, "configuration", str(exc))
        raise SystemExit(1) from None
    _line(True, "configuration is valid")

    from sync.runtime.core import open_core
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
                from sync.services.status import webhook_health

                for health in await webhook_health(core):
                    seen = health.last_delivery_at.isoformat(timespec="seconds") if health.last_delivery_at else "none"
                    _line(health.active > 0 and not health.stale_urls,
                          f"connection {health.connection_id} ({health.provider}) webhooks: {health.active} active, "
                          f"{health.inactive} inactive, last delivery {seen}",
                          ("subscribed at " + ", ".join(health.stale_urls) + ", not at this server's "
                           "CLINICBOT_PUBLIC_URL: the platform signs the URL it delivers to, so deliveries there fail "
                           "or go elsewhere; the renewal job makes new ones at the current URL at its next check")
                          if health.stale_urls else "the poll keeps bookings current meanwhile")
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
    plain = []
    for integration in registry.integrations():
        if integration.configured is None:
            plain.append(integration.title)
            continue
        ready = integration.is_configured(settings)
        _line(ready or None, f"{integration.title} " + ("configured" if ready else "not configured"),
              integration.connect.setup_hint)
    if plain:
        names = plain[0] if len(plain) == 1 else ", ".join(plain[:-1]) + " and " + plain[-1]
        _line(True, f"{names} need{'s' if len(plain) == 1 else ''} no app registration")
    for name, why in sorted(registry.broken().items()):
        failures += 1
        _line(False, f"integration {name} does not load", why)
    _line(bool(settings.public_url) or None, "public URL " + (settings.public_url or "not set"),
          "set CLINICBOT_PUBLIC_URL for OAuth redirects and webhooks")
    raise SystemExit(1 if failures else 0)
