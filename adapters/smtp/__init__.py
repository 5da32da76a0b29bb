"""Email to a practice's clients over SMTP: the visit as an invitation that updates itself."""

from __future__ import annotations

from adapters.smtp.sender import SmtpSender, invitation_text
from adapters.smtp.settings import SmtpSettings, smtp_settings
from sync.contract.integration import ConnectSpec, HostSettings, Integration, Profile
from sync.contract.messages import MailSender, MailSlot

__all__ = ["INTEGRATION", "SmtpSender", "invitation_text"]


def _open(host: HostSettings) -> MailSender | None:
    own = smtp_settings(host)
    return SmtpSender(own) if own.enabled else None


def _configured(host: HostSettings) -> bool:
    return smtp_settings(host).enabled


INTEGRATION = Integration(
    name="smtp",
    title="Email to clients (SMTP)",
    aliases=("email", "mail"),
    word="email",
    settings=SmtpSettings,
    configured=_configured,
    connect=ConnectSpec(
        kinds=("credentials",),
        steps=(
            "Client emails go through the practice's own mail server, set on the server (never in chat):",
            "CLINICBOT_SMTP_HOST, CLINICBOT_SMTP_PORT (587), CLINICBOT_SMTP_SECURITY (starttls, tls or none), "
            "CLINICBOT_SMTP_USERNAME, CLINICBOT_SMTP_PASSWORD and CLINICBOT_SMTP_FROM (the practice's address).",
            "Then clients with an email address get the new time, or the cancellation, as a calendar invitation "
            "when a visit is moved or cancelled; `clinicbot doctor` checks the settings.",
        ),
        setup_hint="set CLINICBOT_SMTP_HOST and CLINICBOT_SMTP_FROM",
    ),
    mail=MailSlot(open=_open),
    profile=Profile(
        reads="nothing",
        writes="emails to clients when a visit moves or is cancelled, with an invitation that updates their calendar",
        arrives="sent within a minute of the change (never in the practice's quiet hours)",
        setup="the practice's mail server (CLINICBOT_SMTP_*)",
    ),
)
