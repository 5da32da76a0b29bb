"""Conditional writes of CalDAV resources.

- create: PUT with If-None-Match: *; the resource name comes from the idempotency key (normally
  the UID), so a retried create meets 412 and raises AlreadyExists instead of making a copy.
- update: PUT with If-Match (If-Match: * when the caller has no etag, so a vanished resource
  is NotFound rather than silently re-created).
- delete: DELETE with If-Match.
- A series master with overrides, and each override, is written by read-modify-write of the whole
  resource under the etag the caller saw: the overrides (or master) we do not touch survive.
"""

from __future__ import annotations

from datetime import datetime

import httpx

from adapters.caldav.resources import (
    CollectionPaths,
    items_from_resource,
    recurrence_token,
    resource_name,
    split_id,
)
from adapters.caldav.session import DavSession
from adapters.caldav.xml import D, propfind
from adapters.kit.ical import serialize_calendar
from sync.contract import NotFound, WrongEtag
from sync.contract.items import EventData, RemoteItem

__all__ = ["ResourceWriter"]

_ICS = {"Content-Type": "text/calendar; charset=utf-8"}


class ResourceWriter:
    """Writes resources of one collection."""

    def __init__(
        self,
        session: DavSession,
        paths: CollectionPaths,
        collection_url: str,
        *,
        name: str,
        default_tz: str | None,
    ) -> None:
        self._session = session
        self._paths = paths
        self._url = collection_url
        self._name = name
        self._default_tz = default_tz

    def _href(self, resource_id: str) -> str:
        return str(httpx.URL(self._url).join(self._paths.href(resource_id)))

    async def fetch(self, resource_id: str) -> list[RemoteItem]:
        """GET one resource as its RemoteItems (master first)."""
        response = await self._session.request("GET", self._href(resource_id))
        etag = response.headers.get("etag") or await self._etag_of(resource_id)
        return items_from_resource(resource_id, etag, response.content, default_tz=self._default_tz)

    async def _etag_of(self, resource_id: str) -> str | None:
        responses, _ = await self._session.multistatus(
            "PROPFIND", self._href(resource_id), propfind([(D, "getetag")]), depth="0"
        )
        return next((r.text(D, "getetag") for r in responses if r.text(D, "getetag")), None)

    async def _put(
        self, resource_id: str, events: list[EventData], headers: dict[str, str], *, creating: bool
    ) -> str | None:
        body = serialize_calendar(events).encode()
        response = await self._session.request(
            "PUT", self._href(resource_id), body=body, headers={**_ICS, **headers}, creating=creating
        )
        # Servers that rewrite what we PUT may withhold the etag (RFC 4791 5.3.4); ask for it then.
        return response.headers.get("etag") or await self._etag_of(resource_id)

    async def create(self, event: EventData, idempotency_key: str) -> RemoteItem:
        resource_id = resource_name(idempotency_key)
        etag = await self._put(resource_id, [event], {"If-None-Match": "*"}, creating=True)
        remote_id = resource_id
        if event.recurrence_id is not None:
            remote_id = f"{resource_id}#{recurrence_token(event.recurrence_id)}"
        return RemoteItem(remote_id, etag, event)

    async def update(self, remote_id: str, event: EventData, if_match: str | None) -> RemoteItem:
        resource_id, token = split_id(remote_id)
        if token is None and not event.rrule:
            # A single event: nothing else lives in its resource.
            etag = await self._conditional_put(resource_id, [event], if_match)
            return RemoteItem(remote_id, etag, event)
        current, current_etag = await self._read(resource_id, if_match)
        kept = [i.event for i in current if i.remote_id != remote_id]
        if token is None:
            events = [event, *(e for e in kept if e.recurrence_id is not None)]
        else:
            events = [*kept, event]
        etag = await self._conditional_put(resource_id, events, current_etag)
        return RemoteItem(remote_id, etag, event)

    async def delete(self, remote_id: str, if_match: str | None) -> None:
        resource_id, token = split_id(remote_id)
        if token is None:
            headers = {"If-Match": if_match} if if_match else {}
            await self._session.request("DELETE", self._href(resource_id), headers=headers)
            return
        current, current_etag = await self._read(resource_id, if_match)
        target = next((i for i in current if i.remote_id == remote_id), None)
        if target is None:
            raise NotFound(f"{self._name}: {remote_id} is not in its resource", provider=self._name)
        occurrence = target.event.recurrence_id or target.event.start
        events: list[EventData] = []
        for item in current:
            if item.remote_id == remote_id:
                continue
            event = item.event
            if event.rrule and event.recurrence_id is None:
                event = event.with_changes(exdates=_add(event.exdates, occurrence))
            events.append(event)
        if not events:
            headers = {"If-Match": current_etag} if current_etag else {}
            await self._session.request("DELETE", self._href(resource_id), headers=headers)
            return
        await self._conditional_put(resource_id, events, current_etag)

    async def _read(self, resource_id: str, if_match: str | None) -> tuple[list[RemoteItem], str | None]:
        current = await self.fetch(resource_id)
        etag = current[0].etag if current else None
        if if_match is not None and etag is not None and if_match != etag:
            raise WrongEtag(f"{self._name}: {resource_id} changed since {if_match}", provider=self._name)
        return current, etag

    async def _conditional_put(self, resource_id: str, events: list[EventData], if_match: str | None) -> str | None:
        try:
            return await self._put(resource_id, events, {"If-Match": if_match or "*"}, creating=False)
        except WrongEtag:
            if if_match is None:
                raise NotFound(f"{self._name}: {resource_id} no longer exists", provider=self._name) from None
            raise


def _add(exdates: tuple[datetime, ...], occurrence: datetime) -> tuple[datetime, ...]:
    return exdates if occurrence in exdates else (*exdates, occurrence)
