"""Charts drawn on the server as SVG: the report pages work without JavaScript, print, and
save with the page. Every label is escaped; each chart carries a <title> and a text
equivalent (the table next to it) for screen readers."""

from __future__ import annotations

from html import escape

from markupsafe import Markup

from accord.reports.sla import SlaReport

ROW = 22
LABEL_WIDTH = 200
BAR_WIDTH = 360
VALUE_WIDTH = 90


def bars(title: str, items: list[tuple[str, float]], unit: str = "") -> Markup:
    """One horizontal bar per item, scaled to the largest."""
    if not items:
        return Markup("")
    top = max(value for _, value in items) or 1
    rows = []
    for i, (label, value) in enumerate(items):
        y = i * ROW
        width = BAR_WIDTH * value / top
        rows.append(
            _label(y, label)
            + _rect(LABEL_WIDTH, y, width, "bar")
            + _text(LABEL_WIDTH + width + 6, y, f"{_number(value)}{unit}")
        )
    return _svg(title, len(items), "".join(rows))


def split_bars(title: str, items: list[tuple[str, int, int]]) -> Markup:
    """One bar per item split in two: on time (left) and breached (right), as shares."""
    if not items:
        return Markup("")
    rows = []
    for i, (label, good, bad) in enumerate(items):
        y = i * ROW
        total = good + bad
        ok = BAR_WIDTH * good / total if total else 0
        late = BAR_WIDTH * bad / total if total else 0
        share = f"{100 * good / total:.0f}% on time" if total else "no deadlines"
        rows.append(
            _label(y, label)
            + _rect(LABEL_WIDTH, y, ok, "bar ok")
            + _rect(LABEL_WIDTH + ok, y, late, "bar late")
            + _text(LABEL_WIDTH + BAR_WIDTH + 6, y, share)
        )
    return _svg(title, len(items), "".join(rows))


def _label(y: int, label: str) -> str:
    return (
        f'<text x="{LABEL_WIDTH - 6}" y="{y + 15}" text-anchor="end">{escape(_short(label))}</text>'
    )


def _rect(x: float, y: int, width: float, css: str) -> str:
    return f'<rect x="{x:.1f}" y="{y + 4}" width="{width:.1f}" height="{ROW - 8}" class="{css}"/>'


def _text(x: float, y: int, text: str) -> str:
    return f'<text x="{x:.1f}" y="{y + 15}">{escape(text)}</text>'


def _svg(title: str, count: int, body: str) -> Markup:
    width = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH + 40
    height = count * ROW + 4
    # Every piece of text in `body` went through escape() in the helpers above.
    return Markup(  # noqa: S704
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}"'
        f' height="{height}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        f"{body}</svg>"
    )


def _short(label: str) -> str:
    return label if len(label) <= 30 else label[:29] + "…"


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def report_charts(report: SlaReport) -> dict[str, Markup]:
    """The SLA report's charts, each beside the table holding the same figures."""
    return {
        "on_time": split_bars(
            "Deadlines met and breached per stage",
            [(s.stage, s.deadlines - s.breaches, s.breaches) for s in report.stages if s.deadlines],
        ),
        "median": bars(
            "Median hours in each stage",
            [(s.stage, s.median_hours) for s in report.stages if s.median_hours is not None],
            " h",
        ),
        "categories": bars(
            "Disputes filed per category",
            [(g.name.replace("_", " "), g.filed) for g in report.categories],
        ),
        "regions": bars(
            "Disputes filed per claimant region", [(g.name, g.filed) for g in report.regions]
        ),
        "hotspots": bars(
            "Objects contested more than once", [(h.name, h.disputes) for h in report.hotspots]
        ),
    }
