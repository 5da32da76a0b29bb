"""Text messages to a practice's clients through Twilio, and their STOP replies (a signed inbound webhook)."""

from __future__ import annotations

from adapters.twilio.inbound import ANSWER, read_inbound, read_status, signature
from adapters.twilio.sender import TwilioSms, twilio_error
from adapters.twilio.settings import TwilioSettings, twilio_settings
from sync.contract.integration import ConnectSpec, HostSettings, Integration, Profile, SmsSlot
from sync.contract.messages import SmsSender

__all__ = ["INTEGRATION", "TwilioSms", "read_inbound", "signature", "twilio_error"]


def _open(host: HostSettings) -> SmsSender | None:
    own = twilio_settings(host)
    return TwilioSms(own) if own.enabled else None


def _configured(host: HostSettings) -> bool:
    return twilio_settings(host).enabled


INTEGRATION = Integration(
    name="twilio",
    title="Text messages to clients (Twilio)",
    aliases=("sms", "text"),
    word="sms",
    settings=TwilioSettings,
    configured=_configured,
    connect=ConnectSpec(
        kinds=("credentials",),
        steps=(
            "Client texts go through the practice's Twilio account, set on the server (never in chat):",
            "CLINICBOT_TWILIO_ACCOUNT_SID and CLINICBOT_TWILIO_AUTH_TOKEN (or CLINICBOT_TWILIO_API_KEY with "
            "CLINICBOT_TWILIO_API_SECRET), and CLINICBOT_TWILIO_FROM (the number, +1...) or "
            "CLINICBOT_TWILIO_MESSAGING_SERVICE_SID.",
            "In Twilio, set the number's \"A message comes in\" webhook to <public URL>/sms/twilio/inbound "
            "(HTTP POST), so a client's STOP reaches clinicbot; it needs the auth token to check the signature.",
            "Then an admin turns texts on with `client-notices channel sms` (or `both`).",
        ),
        setup_hint="set CLINICBOT_TWILIO_ACCOUNT_SID, CLINICBOT_TWILIO_AUTH_TOKEN and CLINICBOT_TWILIO_FROM",
    ),
    sms=SmsSlot(open=_open, inbound=read_inbound, status=read_status, inbound_answer=ANSWER),
    profile=Profile(
        reads="clients' STOP and START replies (signed webhook)",
        writes="texts to clients when a visit is booked, moved or cancelled, and 24 h reminders",
        arrives="sent within a minute of the change (never in the practice's quiet hours)",
        setup="a Twilio number or Messaging Service (CLINICBOT_TWILIO_*) and its inbound webhook",
    ),
)
