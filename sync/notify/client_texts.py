"""What a client message says: the built-in words (en, es) or the practice's own template, filled in.

A message names the practice, the practitioner, the time in the practice's zone and the location;
the service only when the practice turned details on (it was left out of the payload otherwise),
and never the notes. Texts are short: one SMS segment where the names allow, with the opt-out words.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sync.services.client_notices import render_template

__all__ = ["EMAIL_WORDS", "fields", "sms_text"]

EMAIL_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "moved_subject": "Your visit with {practitioner} has moved to {when}",
        "moved": "Hello {client},\n\nyour {service_}visit with {practitioner} at {practice} has moved.\n"
                 "New time: {when} ({zone}).{location_}\n\nThe attached invitation updates it in your calendar.",
        "cancelled_subject": "Your visit with {practitioner} on {when} is cancelled",
        "cancelled": "Hello {client},\n\nyour {service_}visit with {practitioner} at {practice} on {when} ({zone}) "
                     "is cancelled.\n\nThe attached invitation removes it from your calendar.",
        "booked_subject": "Your visit with {practitioner} on {when}",
        "booked": "Hello {client},\n\nyour {service_}visit with {practitioner} at {practice} is booked for "
                  "{when} ({zone}).{location_}\n\nThe attached invitation adds it to your calendar.",
        "reminder_subject": "Reminder: your visit with {practitioner} on {when}",
        "reminder": "Hello {client},\n\na reminder of your {service_}visit with {practitioner} at {practice} on "
                    "{when} ({zone}).{location_}",
        "proposed_subject": "A time for your visit with {practitioner}: {when}",
        "proposed": "Hello {client},\n\nthank you for asking {practice} for a {service_}visit. We can see you on "
                    "{when} ({zone}) with {practitioner}.{location_}\n\nTo book it, confirm here:\n{confirm}\n\n"
                    "If the time does not suit you, reply to this email and we will find another.",
        "location": "\nWhere: {location}",
        "footer": "\n\n{practice}\nNo more messages about your visits: {unsubscribe}",
        "client": "there",
    },
    "es": {
        "moved_subject": "Su cita con {practitioner} ha cambiado al {when}",
        "moved": "Hola {client}:\n\nsu cita {service_}con {practitioner} en {practice} ha cambiado.\n"
                 "Nueva hora: {when} ({zone}).{location_}\n\nLa invitación adjunta la actualiza en su calendario.",
        "cancelled_subject": "Su cita con {practitioner} del {when} está cancelada",
        "cancelled": "Hola {client}:\n\nsu cita {service_}con {practitioner} en {practice} del {when} ({zone}) "
                     "está cancelada.\n\nLa invitación adjunta la quita de su calendario.",
        "booked_subject": "Su cita con {practitioner} el {when}",
        "booked": "Hola {client}:\n\nsu cita {service_}con {practitioner} en {practice} está reservada para el "
                  "{when} ({zone}).{location_}\n\nLa invitación adjunta la añade a su calendario.",
        "reminder_subject": "Recordatorio: su cita con {practitioner} el {when}",
        "reminder": "Hola {client}:\n\nle recordamos su cita {service_}con {practitioner} en {practice} el "
                    "{when} ({zone}).{location_}",
        "proposed_subject": "Una hora para su cita con {practitioner}: {when}",
        "proposed": "Hola {client}:\n\ngracias por pedir una cita {service_}en {practice}. Podemos atenderle el "
                    "{when} ({zone}) con {practitioner}.{location_}\n\nPara reservarla, confirme aquí:\n{confirm}\n\n"
                    "Si la hora no le conviene, responda a este correo y buscaremos otra.",
        "location": "\nLugar: {location}",
        "footer": "\n\n{practice}\nPara no recibir más mensajes sobre sus citas: {unsubscribe}",
        "client": "",
    },
}

_SMS_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "booked": "{practice}: your {service_}visit with {practitioner} is booked for {date} at {time}.{location_}",
        "moved": "{practice}: your {service_}visit with {practitioner} has moved to {date} at {time}.{location_}",
        "cancelled": "{practice}: your {service_}visit with {practitioner} on {date} at {time} is cancelled.",
        "reminder": "{practice}: reminder of your {service_}visit with {practitioner} on {date} at {time}.{location_}",
        "location": " At {location}.",
        "stop": " Reply STOP to opt out.",
    },
    "es": {
        "booked": "{practice}: su cita {service_}con {practitioner} está reservada el {date} a las {time}.{location_}",
        "moved": "{practice}: su cita {service_}con {practitioner} ha cambiado al {date} a las {time}.{location_}",
        "cancelled": "{practice}: su cita {service_}con {practitioner} del {date} a las {time} está cancelada.",
        "reminder": "{practice}: le recordamos su cita {service_}con {practitioner} el {date} a las {time}."
                    "{location_}",
        "location": " En {location}.",
        "stop": " Responda STOP para no recibir más.",
    },
}

_DAYS = {"es": ("lun", "mar", "mié", "jue", "vie", "sáb", "dom")}
_MONTHS = {"es": ("ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sep", "oct", "nov", "dic")}


def _date(moment: datetime, language: str) -> str:
    if language in _DAYS:
        return f"{_DAYS[language][moment.weekday()]} {moment.day:02d} {_MONTHS[language][moment.month - 1]}"
    return f"{moment:%a %d %b}"


def fields(payload: dict[str, Any], recipient_name: str | None) -> dict[str, str]:
    """Every value a message may name, from the payload fixed when it was queued."""
    language = str(payload.get("language") or "en")
    language = language if language in EMAIL_WORDS else "en"
    zone = ZoneInfo(str(payload["zone"]))
    local = datetime.fromisoformat(str(payload["start"])).astimezone(zone)
    service = str(payload.get("service") or "")
    location = str(payload.get("location") or "")
    return {
        "language": language,
        "practice": str(payload.get("practice") or ""),
        "practitioner": str(payload.get("practitioner") or ""),
        "client": (recipient_name or "").split(" ")[0] or EMAIL_WORDS[language]["client"],
        "date": _date(local, language),
        "time": f"{local:%H:%M}",
        "when": f"{_date(local, language)} {local:%Y}, {local:%H:%M}",
        "zone": str(payload["zone"]),
        "location": location,
        "service": service,
        "service_": f"{service} " if service else "",
    }


def sms_text(kind: str, payload: dict[str, Any], template: str | None) -> str:
    """The text message for one notice: the practice's template or the built-in words, and how to opt out."""
    values = fields(payload, None)
    words = _SMS_WORDS[values["language"]]
    if template:
        body = render_template(template, values)
    else:
        location = words["location"].format(location=values["location"]) if values["location"] else ""
        body = words[kind].format(**values, location_=location)
    return body + words["stop"]
