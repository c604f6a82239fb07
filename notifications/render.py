"""Template catalog: one text + HTML pair per event, rendered with escaping in the HTML part."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from accord.platform import wording

TEMPLATE_DIR = Path(__file__).parent / "templates"

SUBJECTS: dict[str, str] = {
    "acknowledgement": "Your dispute has been filed",
    "respondent_notice": "A dispute has been filed naming your organisation",
    "filing_linked": "Your filing was linked to an open dispute",
    "assignment": "You are asked to mediate",
    "admin_task": "Action needed: no eligible mediator",
    "information_request": "Information requested by the mediator",
    "information_answered": "A party answered your information request",
    "offer": "Settlement offer {{ offer_id }}",
    "offer_rejected": "Settlement offer {{ offer_id }} was rejected",
    "warning": "Deadline warning: {{ percent }}% of the {{ purpose }} window has passed",
    "escalation": "Escalated to formal review",
    "settlement": "Settled",
    "closure": "Dispute closed: {{ outcome | label }}",
    "remedy_applied": "Remedy applied: {{ kind | label }}",
    "panel_assignment": "You sit on the {{ 'appeal' if appeal is defined else 'review' }} panel"
    " (round {{ round }})",
    "panel_incomplete": "Action needed: complete the board and redraw the review panel",
    "remedy_overdue": "Action needed: the remedy deadline passed with remedies outstanding",
    "ruling": "Ruling: {{ outcome | label }}; appeal window open",
    "final_ruling": "Final ruling: {{ outcome | label }}",
    "appeal_received": "The ruling has been appealed",
    "review_overdue": "Review overdue: escalated to the executive sponsor",
    "remedy_failed": "Action needed: remedy {{ kind | label }} could not be applied",
    "deadline_problem": "Action needed: the {{ purpose }} deadline is not as the playbook sets it",
    "intake_reply": "Re: {{ subject }}",
    "alert_raised": "A possible channel conflict involving {{ partner }}",
    "alert_dismissed": "A possible channel conflict was closed",
    "exception_notice": "Exception {{ exception }} to {{ clause }}: {{ headline }}",
}


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


class TemplateCatalog:
    def __init__(self, folder: Path = TEMPLATE_DIR) -> None:
        self._html = Environment(
            loader=FileSystemLoader(folder),
            autoescape=select_autoescape(["html", "html.j2"], default_for_string=True),
            undefined=StrictUndefined,
        )
        # Text parts and subjects are not HTML: escaping them would show "&amp;" to readers.
        self._text = Environment(
            loader=FileSystemLoader(folder),
            autoescape=False,  # noqa: S701 - plain-text email, never rendered as HTML
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )
        for env in (self._html, self._text):
            wording.install(env)
        # Compiled once: compiling a subject for every email was an eighth of what enqueueing
        # one cost (inside the audit entry's write transaction).
        self._subjects = {name: self._text.from_string(text) for name, text in SUBJECTS.items()}

    def names(self) -> list[str]:
        return sorted(SUBJECTS)

    def render(self, name: str, context: dict[str, Any]) -> RenderedEmail:
        if name not in SUBJECTS:
            raise KeyError(f"no email template named {name!r}")
        subject = self._subjects[name].render(context)
        # A value echoed into a header must never add a header line.
        subject = " ".join(subject.split())
        number = context.get("number")
        return RenderedEmail(
            # An answer to a mail that is on no dispute yet carries no number.
            subject=f"[{number}] {subject}" if number else subject,
            text=self._text.get_template(f"{name}.txt.j2").render(context),
            html=self._html.get_template(f"{name}.html.j2").render(context),
        )
