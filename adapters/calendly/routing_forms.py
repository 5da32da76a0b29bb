"""Calendly routing form submissions as leads: `routing_form_submission.created` -> LeadInput.

A routing form is the clinic's own questions; Calendly delivers each submission's questions and
answers (`questions_and_answers`: question text and answer), whether or not the person then books.
Answers are matched to a lead's fields by the words of their question ("Email", "Which
practitioner?", "When suits you?"); every other answer goes to the lead's message, question first.
Routing form deliveries need an organization-scope subscription (Calendly allows no other).
"""

from __future__ import annotations

from typing import Any

from sync.contract import BadPayload
from sync.contract.leads import LeadInput

__all__ = ["ROUTING_EVENT", "lead_from_submission"]

ROUTING_EVENT = "routing_form_submission.created"
#: The first field whose words appear in a question takes its answer (order matters: "practitioner
#: name" is a practitioner, not the person's name).
_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("email", ("email", "e-mail")),
    ("phone", ("phone", "mobile", "telephone", "cell")),
    ("practitioner", ("practitioner", "therapist", "doctor", "clinician", "who would you like", "provider")),
    ("location", ("location", "clinic", "where", "branch", "site")),
    ("service", ("service", "treatment", "appointment type", "what would you like", "interested in")),
    ("preferred_times", ("when", "time", "prefer", "availability", "available", "day")),
    ("name", ("name",)),
)


def lead_from_submission(payload: dict[str, Any]) -> LeadInput:
    """The lead a routing form submission describes; BadPayload when it is not one."""
    uri = payload.get("uri")
    answers = payload.get("questions_and_answers")
    if not isinstance(uri, str) or not uri or not isinstance(answers, list):
        raise BadPayload("calendly: a routing form submission needs its uri and questions_and_answers",
                         provider="calendly")
    found: dict[str, list[str]] = {}
    rest: list[str] = []
    for item in answers[:50]:
        if not isinstance(item, dict):
            continue
        question = str(item.get("question") or "").strip()
        answer = item.get("answer")
        text = ", ".join(str(a) for a in answer) if isinstance(answer, list) else str(answer or "")
        text = text.strip()
        if not text:
            continue
        low = question.lower()
        field = next((name for name, words in _FIELDS if any(w in low for w in words)), None)
        if field is None:
            rest.append(f"{question}: {text}")
        else:
            found.setdefault(field, []).append(text)

    def one(field: str, sep: str = " ") -> str:
        return sep.join(found.get(field, ()))

    return LeadInput(
        submission_id=uri.rsplit("/", 1)[-1][:200], name=one("name"), email=one("email").split(",")[0].strip(),
        phone=one("phone").split(",")[0].strip(), service=one("service", ", "), practitioner=one("practitioner", ", "),
        location=one("location", ", "), preferred_times=tuple(found.get("preferred_times", ())),
        message=" / ".join(rest),
    )
