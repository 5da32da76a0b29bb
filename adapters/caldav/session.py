"""One authenticated HTTP session with a CalDAV server, mapping failures onto the error tree."""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import AsyncGenerator
from typing import Any

import httpx

from adapters.caldav.xml import MultistatusParser, Response, parse_multistatus, precondition
from adapters.kit.http import make_client, map_response_error
from adapters.kit.netguard import GuardTransport
from sync.contract import AuthExpired, BadPayload, CursorExpired, ProviderError, Refused, Unavailable

__all__ = ["MAX_REDIRECTS", "DavSession", "ReportUnsupported", "tls_context"]

MAX_REDIRECTS = 5
#: Bytes of a streamed multistatus answer parsed at a time (stream_multistatus).
FEED_BYTES = 32 * 1024
_XML = {"Content-Type": "application/xml; charset=utf-8"}


class _LazyCAContext(ssl.SSLContext):
    """httpx's default verification (system-default TLS client settings, the CA bundle from
    SSL_CERT_FILE / SSL_CERT_DIR or certifi), with the bundle read at the first TLS handshake:
    a sync with a plain-http server on the LAN never pays for it (about 1.5 MB and 45 ms)."""

    _ca_loaded = False

    def _load_ca(self) -> None:
        if not self._ca_loaded:
            if os.environ.get("SSL_CERT_FILE"):
                self.load_verify_locations(cafile=os.environ["SSL_CERT_FILE"])
            elif os.environ.get("SSL_CERT_DIR"):
                self.load_verify_locations(capath=os.environ["SSL_CERT_DIR"])
            else:
                import certifi

                self.load_verify_locations(cafile=certifi.where())
            self._ca_loaded = True

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        self._load_ca()
        return super().wrap_bio(*args, **kwargs)

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        self._load_ca()
        return super().wrap_socket(*args, **kwargs)


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The one TLS client context CalDAV sessions share (certificates and host names verified)."""
    return _LazyCAContext(ssl.PROTOCOL_TLS_CLIENT)


class ReportUnsupported(Refused):
    """The server does not implement the REPORT or property asked for."""


class DavSession:
    """httpx client + error mapping + multistatus helpers, bound to one account."""

    def __init__(
        self,
        base_url: str,
        *,
        username: str | None,
        password: str | None,
        provider: str = "caldav",
        transport: httpx.AsyncBaseTransport | None = None,
        allow_private_urls: bool = False,
        timeout: float = 60.0,
    ) -> None:
        self.provider = provider
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        auth = httpx.BasicAuth(username, password or "") if username else None
        if not allow_private_urls:
            transport = GuardTransport(transport or httpx.AsyncHTTPTransport(verify=tls_context()))
        self.client = make_client(self.base_url, auth=auth, transport=transport, timeout=timeout,
                                  verify=tls_context())

    async def aclose(self) -> None:
        await self.client.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        creating: bool = False,
        follow: bool = False,
        unsupported: tuple[int, ...] = (),
    ) -> httpx.Response:
        """Send one request; raise the mapped ProviderError for any status >= 400."""
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = await self.client.request(method, url, content=body, headers=headers)
            except ProviderError:
                raise
            except httpx.HTTPError as exc:
                raise self._unreachable(exc) from exc
            if follow and response.status_code in (301, 302, 303, 307, 308) and "location" in response.headers:
                url = str(response.url.join(response.headers["location"]))
                continue
            if response.status_code >= 400:
                error = self._error(response, creating=creating)
                if response.status_code in unsupported and not isinstance(error, CursorExpired | AuthExpired):
                    raise ReportUnsupported(str(error), provider=self.provider) from error
                raise error
            return response
        raise Unavailable(f"{self.provider}: too many redirects", provider=self.provider)

    def _error(self, response: httpx.Response, *, creating: bool) -> ProviderError:
        status = response.status_code
        if status in (403, 409) and "valid-sync-token" in precondition(response.content):
            return CursorExpired(f"{self.provider}: the server no longer knows the sync-token", provider=self.provider)
        if status == 401:
            return AuthExpired(f"{self.provider}: the server refused the user name or password", provider=self.provider)
        if status == 403 and creating and "no-uid-conflict" in precondition(response.content):
            return map_response_error(httpx.Response(412, request=response.request), self.provider, creating=True)
        return map_response_error(response, self.provider, creating=creating)

    async def multistatus(
        self,
        method: str,
        url: str,
        body: bytes,
        *,
        depth: str,
        follow: bool = False,
        unsupported: tuple[int, ...] = (),
    ) -> tuple[list[Response], str | None]:
        """PROPFIND/REPORT returning the parsed 207 (responses, sync-token)."""
        response = await self.request(
            method, url, body=body, headers={**_XML, "Depth": depth}, follow=follow, unsupported=unsupported
        )
        if response.status_code != 207:
            raise BadPayload(f"{self.provider}: {method} answered {response.status_code}, not 207")
        return parse_multistatus(response.content)

    async def stream_multistatus(
        self,
        method: str,
        url: str,
        body: bytes,
        parser: MultistatusParser,
        *,
        depth: str,
        unsupported: tuple[int, ...] = (),
    ) -> AsyncGenerator[list[Response], None]:
        """A PROPFIND/REPORT whose 207 is parsed as it arrives: yields Responses chunk by chunk;
        `parser.token` holds the sync-token once the iteration ends. Errors as `request`'s."""
        try:
            async with self.client.stream(method, url, content=body, headers={**_XML, "Depth": depth}) as response:
                if response.status_code >= 400:
                    await response.aread()
                    error = self._error(response, creating=False)
                    if response.status_code in unsupported and not isinstance(error, CursorExpired | AuthExpired):
                        raise ReportUnsupported(str(error), provider=self.provider) from error
                    raise error
                if response.status_code != 207:
                    raise BadPayload(f"{self.provider}: {method} answered {response.status_code}, not 207")
                async for chunk in response.aiter_bytes():
                    # A compressed answer decodes to chunks of ~300 KB (~500 responses): fed in
                    # slices, the reader takes its page from the first slices and the rest is
                    # parsed when it asks for more, so a chunk's responses never all exist at once.
                    view = memoryview(chunk)
                    for at in range(0, len(view), FEED_BYTES):
                        parsed = parser.feed(view[at:at + FEED_BYTES])
                        if parsed:
                            yield parsed
        except ProviderError:
            raise
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        parser.close()

    def _unreachable(self, exc: httpx.HTTPError) -> Unavailable:
        """The error for a request that got no answer: timed out, refused, cut off."""
        what = "timed out" if isinstance(exc, httpx.TimeoutException) else type(exc).__name__
        return Unavailable(f"{self.provider}: {what}", provider=self.provider)

    def refuse(self, message: str) -> Refused:
        return Refused(f"{self.provider}: {message}", provider=self.provider)

    @staticmethod
    def header(response: httpx.Response, name: str) -> str | None:
        value: Any = response.headers.get(name)
        return str(value) if value is not None else None
