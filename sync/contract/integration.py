"""What one platform folder exports: the Integration descriptor, its connect spec and capability slots.

Every adapters/<platform>/ package exports `INTEGRATION` (or several, for variants such as iCloud on
CalDAV) and registers it under the `clinicbot.integrations` entry-point group. The core asks these
descriptors for names, titles, settings and capabilities, so no shared file names a platform.
Adapters see plain data only: no database rows and no web framework.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable
from urllib.parse import urlsplit

from pydantic_settings import BaseSettings

from sync.contract import BookingSource, CalendarInfo, CalendarProvider, ConnectionInfo
from sync.contract.crm import CrmSlot
from sync.contract.leads import LeadFeedSlot, LeadInput, LeadOutcome
from sync.contract.messages import InboundSms, MailSlot, SmsSender, SmsStatus
from sync.contract.shifts import Publishing, ShiftSourceSlot

__all__ = [
    "CONNECT_KINDS",
    "ROLES",
    "AppChannel",
    "AppDelivery",
    "AppWebhooks",
    "CalendarSlot",
    "Channel",
    "ChannelDesk",
    "ChannelOpened",
    "ConnectKind",
    "ConnectOption",
    "ConnectSpec",
    "Connected",
    "HostSettings",
    "Integration",
    "OAuthFlow",
    "OAuthStart",
    "Profile",
    "PushChannels",
    "SignedWebhooks",
    "SmsSlot",
    "StaffRef",
    "TenantConnect",
    "WebhookAnswer",
    "WebhookRequest",
    "check_http_url",
]

ConnectKind = Literal["oauth2", "credentials", "feed_url", "tenant_consent", "route", "signed_form"]
CONNECT_KINDS: tuple[ConnectKind, ...] = ("oauth2", "credentials", "feed_url", "tenant_consent", "route",
                                          "signed_form")
#: The roles a calendar can have: bookings are read from a source, copies written to a mirror,
#: a busy calendar only blocks time, and a work calendar (a person's own work calendar) blocks time
#: and shows its events beside the agenda without them becoming appointments or being stored.
ROLES = ("source", "mirror", "busy", "work")

S = TypeVar("S", bound=BaseSettings)


def check_http_url(value: str | None, *, allow_none: bool = True) -> str | None:
    """A settings validator: an http(s) URL without its trailing slash (the message names what is wrong)."""
    if value is None or value == "":
        if allow_none:
            return None
        raise ValueError("must be an http(s) URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http(s) URL like https://example.org, got {value!r}")
    return value.rstrip("/")


@runtime_checkable
class HostSettings(Protocol):
    """What an adapter may read of the core's settings: shared values and its own settings section."""

    allow_private_urls: bool
    public_url: str | None

    def base_url(self) -> str:
        """The URL the outside world reaches this server at (OAuth redirects, webhooks)."""
        ...

    def section(self, cls: type[S]) -> S:
        """The integration settings of class `cls`, read from the environment once."""
        ...


@dataclass(frozen=True, slots=True)
class OAuthStart:
    """The start of an OAuth sign-in: where to send the person, and what the core keeps until the callback.

    `secret` (PKCE verifier, MSAL flow, options) is stored encrypted in a single-use state row.
    """

    url: str
    state: str
    secret: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Connected:
    """A finished connect, as plain data: the core writes the Connection and its calendars from it once."""

    account: str
    config: dict[str, Any]
    credentials: dict[str, Any] | None
    calendars: list[CalendarInfo]


class OAuthFlow(Protocol):
    """The OAuth2 round trip of one integration. The core owns the state row, expiry and single use."""

    async def begin(
        self, host: HostSettings, *, redirect_uri: str, options: Mapping[str, str], transport: Any = None
    ) -> OAuthStart:
        """The consent URL for a fresh state; raises Refused when the integration is not configured."""
        ...

    async def finish(
        self, host: HostSettings, *, secret: dict[str, Any], query: Mapping[str, str], transport: Any = None
    ) -> Connected:
        """Redeem the callback's query (code, state...) and discover the account's calendars."""
        ...


@dataclass(frozen=True, slots=True)
class StaffRef:
    """A practitioner as an integration sees them: their identities on platforms (plain data, no rows)."""

    practitioner_id: int
    name: str
    email: str | None
    #: e.g. {"upn": "dr.lee@clinic.example", "object_id": "6f1c..."}; empty values left out.
    identities: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StaffIdentities:
    """How an integration names staff in its directory (Graph: UPN and Entra object id), as pure functions.

    The core stores the identities (external-identity table) and calls these; the integration never sees rows.
    """

    #: The kinds it knows, e.g. ("upn", "object_id").
    kinds: tuple[str, ...]
    #: Checks and normalises typed identities (kind -> value, None for unset) into the ones to store
    #: (empty values left out); raises Refused with a message for the admin.
    clean: Callable[[Mapping[str, str | None]], dict[str, str]]
    #: How a practice-wide connection addresses one person (None: not addressed, opted out).
    user_ref: Callable[[StaffRef], str | None]


class TenantConnect(Protocol):
    """A practice-wide connection after an admin consented for the tenant (the core checked the consent)."""

    async def connect(
        self, host: HostSettings, *, tenant: str, staff: Sequence[StaffRef], transport: Any = None
    ) -> Connected:
        """The connection for `tenant` acting for the mapped `staff`, with the calendars found for them."""
        ...


@dataclass(frozen=True, slots=True)
class ConnectOption:
    """A choice a person makes when connecting (the CLI's `--send-updates all`), passed to the OAuth flow."""

    name: str
    help: str
    choices: tuple[str, ...] = ()
    default: str | None = None
    #: A choice about what the signing-in person's own account grants clinicbot (a scope), which they
    #: make themselves, at sign-in only (`connection set` cannot change a grant); other options set how
    #: the practice's connection behaves (admins only in chat, changeable later).
    personal: bool = False

    @property
    def flag(self) -> str:
        """The command-line flag: `send_updates` -> `--send-updates`."""
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True, slots=True)
class ConnectSpec:
    """How a person connects this integration, and what the chat and CLI tell them.

    - oauth2: a sign-in link from chat or the CLI (`oauth` is the flow);
    - credentials: server URL, user name and password, given to the CLI only (never typed into chat);
    - feed_url: one secret URL, given to the CLI only;
    - tenant_consent: a practice-wide connection after an admin's consent (`clinicbot connection add`
      with the tenant id);
    - route: clinicbot has no adapter of its own for the platform; the steps say which working
      integration (`via`) reaches its bookings, and chat and the CLI answer with them;
    - signed_form: an endpoint clinicbot serves for the clinic's own form; connecting (an admin in
      chat, or the CLI) makes the connection and its signing secret, stored encrypted and shown once.
    """

    #: The ways it connects; the first is what chat offers.
    kinds: tuple[ConnectKind, ...]
    #: Chat's numbered steps for the kinds that are finished on the command line.
    steps: tuple[str, ...] = ()
    #: Role of the calendar discovery marks primary (or the only one), and of the others.
    primary_role: str = "busy"
    other_role: str = "busy"
    oauth: OAuthFlow | None = None
    #: Fixed connection config for this variant (for example a default server URL).
    defaults: Mapping[str, str] = field(default_factory=dict)
    #: Words for the configuration the integration needs before anyone can connect (doctor, chat).
    setup_hint: str = ""
    #: Choices a person makes when connecting (oauth2).
    options: tuple[ConnectOption, ...] = ()
    #: credentials: further secrets the connection may carry besides the password (`clinicbot connection
    #: add --secret-env FIELD=VAR`), stored encrypted with the credentials under these names.
    secret_fields: tuple[str, ...] = ()
    #: tenant_consent: the client id of the app registration an admin consents to, and the connect itself.
    client_id: Callable[[HostSettings], str | None] | None = None
    tenant: TenantConnect | None = None
    #: route: the integrations (by name) the route goes through; the first is where chat sends a
    #: person who types the route's word (its sign-in link, when it signs in).
    via: tuple[str, ...] = ()

    @property
    def kind(self) -> ConnectKind:
        """The way chat offers."""
        return self.kinds[0]

    def __post_init__(self) -> None:
        if not self.kinds or any(k not in CONNECT_KINDS for k in self.kinds):
            raise ValueError(f"connect kinds must be among {', '.join(CONNECT_KINDS)}, got {self.kinds!r}")
        for role in (self.primary_role, self.other_role):
            if role not in ROLES:
                raise ValueError(f"a default role must be one of {', '.join(ROLES)}, got {role!r}")
        if "oauth2" in self.kinds and self.oauth is None:
            raise ValueError("an oauth2 connect needs its OAuthFlow")
        if "tenant_consent" in self.kinds and (self.client_id is None or self.tenant is None):
            raise ValueError("a tenant_consent connect needs its client_id and its TenantConnect")
        if "route" in self.kinds and (self.kinds != ("route",) or not self.via or not self.steps):
            raise ValueError("a route is the only kind of its connect and needs the integrations it goes via "
                             "and its steps")
        if self.via and "route" not in self.kinds:
            raise ValueError("only a route goes via other integrations")


@dataclass(frozen=True, slots=True)
class Channel:
    """One push channel (a Graph subscription, a Google watch channel) as the core stores it; secret encrypted."""

    remote_id: str
    resource_id: str
    secret: str
    expires_at: datetime
    calendar_remote_id: str = ""


@dataclass(frozen=True, slots=True)
class ChannelOpened:
    """What opening or renewing a calendar's channel did."""

    channel: Channel
    #: True when it replaced or extended a channel the calendar had; False for a first (or re-made) one.
    renewed: bool
    #: The stored channel was extended in place (same id): only its expiry changes.
    in_place: bool = False
    #: An older channel to stop once the new one is stored (best effort: it expires anyway).
    retire: Channel | None = None


class PushChannels(Protocol):
    """The push-channel capability: change notifications for one calendar, opened, renewed and stopped."""

    #: Renew a channel this long before it expires.
    renew_margin: timedelta

    def api_url(self, host: HostSettings) -> str:
        """The platform's API address (plain http is accepted for loopback tests only when both are on loopback)."""
        ...

    async def open(self, provider: CalendarProvider, url: str, current: Channel | None) -> ChannelOpened:
        """Open a channel announcing changes to `url`, or renew `current`."""
        ...

    async def stop(self, provider: CalendarProvider, channel: Channel) -> None:
        """Stop a channel at the platform; one already gone is fine."""
        ...


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """An inbound webhook as plain data: method, header names in lower case, query, raw body, and the
    secret path token after the connection id (`/webhooks/<name>/<connection>/<token>`), if any."""

    method: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes = b""
    path_token: str = ""


@dataclass(frozen=True, slots=True)
class WebhookAnswer:
    """What to answer the platform: status, body text and its type, extra headers."""

    status: int
    text: str = ""
    content_type: str = "text/plain"
    headers: Mapping[str, str] = field(default_factory=dict)


class ChannelDesk(Protocol):
    """What the core offers a webhook handler for one connection: its stored channels and its sync queue."""

    connection_id: int

    def now(self) -> datetime:
        """The core's clock."""
        ...

    async def channel(self, channel_id: str) -> Channel | None:
        """The connection's active channel of that id (with its secret), or None."""
        ...

    async def sync(self, channel: Channel, reason: str) -> None:
        """Ask for an incremental sync of the connection (queued, never run inline)."""
        ...

    async def sync_items(self, channel: Channel, external_ids: Sequence[str], reason: str) -> None:
        """Ask for a read of these items only (ids the delivery named), queued like `sync`; the read
        fetches each through the API, so an id the platform does not return for this connection changes
        nothing. Where a full read is pending anyway, or the calendar cannot read items, it reads the window."""
        ...

    async def renew_soon(self, channel: Channel) -> None:
        """The platform wants the channel renewed (re-authorized): the renewal job does it at its next run."""
        ...

    async def forget(self, channel: Channel) -> None:
        """The platform removed the channel: the next ensure makes a new one."""
        ...

    async def channels(self) -> list[Channel]:
        """The connection's active channels with their secrets (a platform whose deliveries name no channel)."""
        ...

    async def first_delivery(self, key: str) -> bool:
        """Remember a delivery's key (event id or body hash); False when it was seen before (a replay).

        The memory is persisted and bounded per connection, so replays are caught across restarts.
        """
        ...

    async def intake_lead(self, lead: LeadInput) -> LeadOutcome:
        """Hand a verified form submission to the core's lead intake (stored, merged, staff told).

        Raises Unavailable when this server takes no leads (the intake is not running)."""
        ...


class SignedWebhooks(Protocol):
    """The signed-webhook capability: check an inbound notification and say what to sync, fast."""

    #: Bodies larger than this are refused (413) before they are read whole.
    max_body: int

    async def handle(self, request: WebhookRequest, desk: ChannelDesk) -> WebhookAnswer:
        """Verify (signature, channel secret...) and queue syncs through `desk`; a rejected one changes nothing."""
        ...


@dataclass(frozen=True, slots=True)
class CalendarSlot:
    """The calendar capability: find an account's calendars, and open one of them."""

    discover: Callable[[ConnectionInfo, HostSettings], Awaitable[list[CalendarInfo]]]
    open_calendar: Callable[[ConnectionInfo, str, HostSettings], CalendarProvider]


@dataclass(frozen=True, slots=True)
class SmsSlot:
    """The text-message capability: a sender for this server's settings, and the inbound-message webhook.

    The inbound webhook lives at `/sms/<integration>/inbound` (no connection: the number is the server's),
    delivery reports at `/sms/<integration>/status`.
    """

    open: Callable[[HostSettings], SmsSender | None]
    #: Checks an inbound message's signature against `url` (the full address the platform called) and
    #: reads it. Refused when the signature is missing or wrong (or the server cannot check one),
    #: BadPayload when the request is not a message.
    inbound: Callable[[WebhookRequest, str, HostSettings], InboundSms]
    #: Checks and reads a delivery report posted to `/sms/<integration>/status` (same errors as `inbound`).
    status: Callable[[WebhookRequest, str, HostSettings], SmsStatus] | None = None
    #: What the platform expects as the answer to an accepted inbound message.
    inbound_answer: WebhookAnswer = field(default_factory=lambda: WebhookAnswer(200))
    #: Inbound bodies larger than this are refused (413).
    max_body: int = 64 * 1024


@dataclass(frozen=True, slots=True)
class Profile:
    """What the README's platform table says of an integration where its capabilities cannot say it.

    Each text is one short phrase; an empty one is derived from the descriptor (its capabilities,
    its connect) by sync.integrations.table.
    """

    #: What clinicbot reads from it ("appointments with client, service, staff and status").
    reads: str = ""
    #: What it can write back ("reschedule and cancel", "nothing: read only").
    writes: str = ""
    #: How fast changes arrive ("push (webhooks)", "poll").
    arrives: str = ""
    #: What the clinic has to set up on the platform's side.
    setup: str = ""
    #: The row's name in the table when it is not the integration's title.
    label: str = ""


@dataclass(frozen=True, slots=True)
class AppChannel:
    """A webhook destination serving the whole app (every connection of the integration)."""

    remote_id: str
    secret: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class AppDelivery:
    """A verified delivery to an app-wide destination: whose account it is about, its key, why."""

    account: str
    key: str
    reason: str


class AppWebhooks(Protocol):
    """One destination for the whole app, its deliveries routed to connections by account (Nylas's
    webhooks are application-wide: one destination per connection would receive every grant's events)."""

    renew_margin: timedelta

    async def open(self, host: HostSettings, url: str, current: AppChannel | None, transport: Any = None
                   ) -> AppChannel:
        """Make the destination at `url`, or rotate the secret of `current` when it is still there."""
        ...

    async def stop(self, host: HostSettings, remote_id: str, transport: Any = None) -> None:
        """Delete a destination (gone already is fine)."""
        ...

    def read(self, request: WebhookRequest, secret: str) -> AppDelivery | WebhookAnswer:
        """A challenge's answer, a refusal, or the verified delivery (signature checked on the raw body first)."""
        ...

    def account_of(self, config: Mapping[str, Any]) -> str:
        """The account key deliveries name for a connection of this integration (its config); "" when
        its config does not say it yet (see `account_config`)."""
        ...

    async def account_config(self, conn: ConnectionInfo, host: HostSettings) -> dict[str, Any]:
        """Config entries that make `account_of` answer the key deliveries name, asked of the platform
        when the connection names its account another way (a Nylas grant added by its email: paths take
        the email, deliveries carry the grant's id); {} when its config says it already."""
        ...


@dataclass(frozen=True, slots=True)
class Integration:
    """One platform as the core sees it. Capability slots left None are capabilities it does not have."""

    name: str
    title: str
    connect: ConnectSpec
    #: Words people may type for it in chat (`connect outlook`); the name always works.
    aliases: tuple[str, ...] = ()
    #: The word chat suggests (`connect outlook`), when not its name.
    word: str = ""
    #: Its own pydantic-settings class (its environment variables), or None when it needs none.
    settings: type[BaseSettings] | None = None
    #: Whether this server is set up for it, from its settings section (None: nothing to set up).
    configured: Callable[[HostSettings], bool] | None = None
    calendars: CalendarSlot | None = None
    #: A booking platform: opens the BookingSource of a connection.
    booking_source: Callable[[ConnectionInfo, HostSettings], BookingSource] | None = None
    push_channels: PushChannels | None = None
    signed_webhooks: SignedWebhooks | None = None
    #: One app-wide webhook destination (routed by account) instead of one per connection.
    app_webhooks: AppWebhooks | None = None
    #: Publishing shifts into people's calendars (Graph, practice-wide).
    publishing: Publishing | None = None
    #: A shift schedule source: a scheduler's export file or published feed.
    shift_source: ShiftSourceSlot | None = None
    #: Directory identities of staff (kinds, validation, how a practice-wide connection addresses them).
    staff_identities: StaffIdentities | None = None
    #: Unsigned webhooks: each connection gets an unguessable path token at connect (stored encrypted with
    #: its credentials as `webhook_token`, shown once), and the webhook address ends in it.
    path_token: bool = False
    #: The kind of id its staff have in the staff mapping (`unit`, `team_member`...), when a booking source.
    staff_kind: str = ""
    #: Its row in the README's platform table (what capabilities cannot say).
    profile: Profile = field(default_factory=Profile)
    #: Sending email to clients (SMTP).
    mail: MailSlot | None = None
    #: Sending text messages to clients, and reading their replies (STOP).
    sms: SmsSlot | None = None
    #: Logging visits to a CRM (HubSpot meetings, Salesforce events).
    crm: CrmSlot | None = None
    #: Form submissions read by polling, each one a lead (HubSpot forms).
    lead_feed: LeadFeedSlot | None = None
    #: The platform tells clients of changes itself (booking platforms): clinicbot stays quiet for its
    #: bookings unless a connection's config says `notifies_clients: false`.
    notifies_clients: bool = False

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name != self.name.lower():
            raise ValueError(f"an integration name is a lower-case identifier, got {self.name!r}")
        if self.is_route and any(slot is not None for slot in (
                self.calendars, self.booking_source, self.push_channels, self.signed_webhooks, self.publishing)):
            raise ValueError(f"{self.name}: a route has no capabilities of its own")

    @property
    def is_route(self) -> bool:
        """True for a platform reached through other integrations: chat and the CLI answer with its steps."""
        return "route" in self.connect.kinds

    @property
    def words(self) -> tuple[str, ...]:
        """Every word that names it in chat: its name first, then its aliases."""
        return (self.name, *(a for a in self.aliases if a != self.name))

    @property
    def chat_word(self) -> str:
        """The word chat suggests for it."""
        return self.word or self.name

    def is_configured(self, host: HostSettings) -> bool:
        """True when the server has what this integration needs (always, for those needing nothing)."""
        return True if self.configured is None else bool(self.configured(host))
