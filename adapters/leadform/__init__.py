"""Lead forms: a clinic's own website form posts signed JSON to clinicbot, and each submission is a lead.

Connect (an admin in chat with `connect leadform`, or `clinicbot connection add leadform`) makes
the form's address `/webhooks/leadform/<connection>` and its signing secret, shown once. The
payload and the signature are described in this folder's README.md.
"""

from __future__ import annotations

from adapters.leadform.webhooks import SIGNATURE_HEADER, LeadForm, LeadFormWebhooks, sign, verify
from sync.contract.integration import ConnectSpec, Integration, Profile

__all__ = ["INTEGRATION", "SIGNATURE_HEADER", "LeadForm", "LeadFormWebhooks", "sign", "verify"]

INTEGRATION = Integration(
    name="leadform",
    title="Lead form (website)",
    aliases=("leads", "webform", "form"),
    word="leadform",
    connect=ConnectSpec(
        kinds=("signed_form",),
        steps=(
            "clinicbot makes the form's address and its signing secret; the secret is shown once, here.",
            "The website's server posts each submission as JSON to that address, signed with the secret: "
            "header X-Clinicbot-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.\" + body>.",
            "Each submission becomes a lead: the staff channel gets a card with free slots that fit, "
            "and Propose, Book and Mark lost buttons.",
        ),
    ),
    signed_webhooks=LeadFormWebhooks(),
    profile=Profile(
        reads="form submissions: name, email, phone, service, practitioner, location, preferred times",
        writes="nothing (proposals go to the client by email)",
        arrives="signed POST from the clinic's website (HMAC-SHA256, 5-minute window)",
        setup="the website posts signed JSON (see adapters/leadform/README.md)",
        label="Lead form (website)",
    ),
)
