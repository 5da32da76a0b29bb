"""Client emails over SMTP (aiosmtplib): a text body, and the visit as an iCalendar invitation.

The invitation is both an inline `text/calendar; method=...` alternative (what Outlook and Gmail
read as a meeting update) and an `invite.ics` attachment. The Message-ID is derived from the
message's key, so a resend after a lost answer is recognisably the same message.
"""

from __future__ import annotations

import email.policy
import hashlib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formataddr, parseaddr

import aiosmtplib

from adapters.kit.ical.writer import PRODID, escape_text, fold
from adapters.smtp.settings import SmtpSettings
from sync.contract import Refused, Unavailable
from sync.contract.messages import ClientEmail, Invitation

__all__ = ["PROVIDER", "SmtpSender", "invitation_text"]

PROVIDER = "smtp"
SMTP_POLICY = email.policy.SMTP.clone(max_line_length=998)


def _utc(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def _mailto(name: str, email: str) -> str:
    cn = name.replace('"', "'")
    return f'CN="{cn}":mailto:{email}'


def invitation_text(inv: Invitation, stamp: datetime | None = None) -> str:
    """The VCALENDAR of one invitation (times in UTC: every calendar reads them the same)."""
    lines = [
        "BEGIN:VCALENDAR",
        f"PRODID:{PRODID}",
        "VERSION:2.0",
        f"METHOD:{inv.method}",
        "BEGIN:VEVENT",
        f"UID:{escape_text(inv.uid)}",
        f"SEQUENCE:{inv.sequence}",
        f"DTSTAMP:{_utc(stamp or datetime.now(UTC))}",
        f"DTSTART:{_utc(inv.start)}",
        f"DTEND:{_utc(inv.end)}",
        f"SUMMARY:{escape_text(inv.summary)}",
        f"STATUS:{'CANCELLED' if inv.method == 'CANCEL' else 'CONFIRMED'}",
        f"ORGANIZER;{_mailto(inv.organizer_name, inv.organizer_email)}",
        f"ATTENDEE;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;{_mailto(inv.attendee_name, inv.attendee_email)}",
    ]
    if inv.location:
        lines.append(f"LOCATION:{escape_text(inv.location)}")
    lines += ["END:VEVENT", "END:VCALENDAR"]
    return "\r\n".join(fold(line) for line in lines) + "\r\n"


class SmtpSender:
    """Sends through one SMTP server; a connection per message (client emails are few and far between)."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def build(self, email: ClientEmail) -> EmailMessage:
        s = self.settings
        assert s.smtp_from is not None
        # Long headers (the List-Unsubscribe URL) are kept on one line, never turned into encoded words.
        msg = EmailMessage(policy=SMTP_POLICY)
        msg["From"] = s.smtp_from
        msg["To"] = formataddr((email.to_name, email.to))
        msg["Subject"] = email.subject
        domain = s.smtp_from.rsplit("@", 1)[-1].strip("> ") or "clinicbot.invalid"
        digest = hashlib.sha256(email.key.encode()).hexdigest()[:32]
        msg["Message-ID"] = f"<{digest}@{domain}>"
        if email.unsubscribe_url:
            msg["List-Unsubscribe"] = f"<{email.unsubscribe_url}>"
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg.set_content(email.text)
        if email.invitation is not None:
            ics = invitation_text(email.invitation)
            msg.add_alternative(ics, subtype="calendar", params={"method": email.invitation.method})
            msg.add_attachment(ics.encode(), maintype="application", subtype="ics", filename="invite.ics")
        return msg

    async def send(self, email: ClientEmail) -> None:
        s = self.settings
        msg = self.build(email)
        context = ssl.create_default_context()
        try:
            # Flattened here, with long header lines kept whole (aiosmtplib would fold them at 78).
            await aiosmtplib.send(
                msg.as_bytes(policy=SMTP_POLICY),
                sender=parseaddr(str(msg["From"]))[1],
                recipients=[email.to],
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username,
                password=s.smtp_password,
                use_tls=s.smtp_security == "tls",
                start_tls=s.smtp_security == "starttls",
                tls_context=context if s.smtp_security != "none" else None,
                timeout=s.smtp_timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise Refused(f"{PROVIDER}: the server refused the recipient ({_codes(exc)})", provider=PROVIDER) from None
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise Refused(f"{PROVIDER}: the server refused clinicbot's login ({exc.code}); check "
                          "CLINICBOT_SMTP_USERNAME and CLINICBOT_SMTP_PASSWORD", provider=PROVIDER) from None
        except aiosmtplib.SMTPResponseException as exc:
            if 400 <= exc.code < 500:
                raise Unavailable(f"{PROVIDER}: the server deferred the message ({exc.code})", provider=PROVIDER) \
                    from None
            raise Refused(f"{PROVIDER}: the server refused the message ({exc.code})", provider=PROVIDER) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise Unavailable(f"{PROVIDER}: cannot reach the mail server ({type(exc).__name__})", provider=PROVIDER) \
                from None


def _codes(exc: aiosmtplib.SMTPRecipientsRefused) -> str:
    return ", ".join(str(r.code) for r in exc.recipients) or "refused"
