"""Opening a Core: the store, the secret key, and every domain subscriber, in one call.

It sits above all of sync's layers because it wires them together: the runtime's `Core` cannot
import the engine, yet any Core (the server, the CLI, an embedder, a test) must queue the remote
writes its changes need. So the subscribers are registered here, when the Core opens, and not
when a `SyncWorker` starts: a Core without a worker reschedules and its outbox rows are there.
"""

from __future__ import annotations

import logging

from sync.runtime.core import Core
from sync.runtime.settings import Settings
from sync.store.crypto import install_key, load_or_create_key
from sync.store.database import Store

__all__ = ["open_core", "register_domains"]

log = logging.getLogger("clinicbot.core")


def register_domains(core: Core) -> None:
    """Hook every domain subscriber onto `core.bus` (idempotent): the outbox for appointment changes,
    the messages to clients about their visits, the staff card for a visit outside every shift, and the
    lead intake, and the CRM log."""
    # The engine and the notifiers (about 250 modules) load for a Core with domains, not for `clinicbot db`.
    from sync.engine import subscriber  # lazy: the engine, for a Core with domains only
    from sync.notify import clients, crm, leads, shift_notices  # lazy: the notifiers, as the engine

    subscriber.register(core)
    clients.register(core)
    shift_notices.register(core)
    leads.register(core)
    crm.register(core)


def open_core(settings: Settings, *, domains: bool = True) -> Core:
    """Install the secret key, open the store and register the domain subscribers; no I/O beyond
    reading or creating the key file.

    `domains=False` leaves the subscribers out, for a process that only migrates or inspects the schema
    (`clinicbot db`): it changes no appointment, so nothing needs queuing, and it starts without the engine.
    """
    key, where = load_or_create_key(settings.secret_key, settings.secret_key_file, generate=settings.is_sqlite)
    install_key(key)
    log.debug("secret key loaded", extra={"key_source": where})
    core = Core(settings=settings, store=Store(settings.database_url, settings.database_schema,
                                                pool_size=settings.database_pool_size))
    if domains:
        register_domains(core)
    return core
