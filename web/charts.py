"""Charts drawn on the server as SVG: the report pages work without JavaScript, print, and
save with the page. Every label is escaped; each chart carries a <title> and a text
equivalent (the table next to it) for screen readers."""

from __future__ import annotations

import math
from html import escape

from markupsafe import Markup

from accord.platform.wording import label as words
from accord.reports.health import ChannelHealth
from accord.reports.sla import SlaReport
from models.enums import AlertKind, AlertState

ROW = 22
LABEL_WIDTH = 200
BAR_WIDTH = 360
VALUE_WIDTH = 90
WIDTH = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH + 40
PLOT_HEIGHT = 160
"""The height of an over-time chart's tallest column."""
AXIS_WIDTH = 44
TICK_WIDTH = 56
"""The room one interval's label under a column takes: fewer are labelled when they crowd."""


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


def split_bars(
    title: str,
    items: list[tuple[str, int, int]],
    good_words: str = "on time",
    none_words: str = "no deadlines",
) -> Markup:
    """One bar per item split in two: on time (left) and breached (right), as shares; another
    pair's words (`good_words` for the left's share, `none_words` for an empty bar) if given."""
    if not items:
        return Markup("")
    rows = []
    for i, (label, good, bad) in enumerate(items):
        y = i * ROW
        total = good + bad
        ok = BAR_WIDTH * good / total if total else 0
        late = BAR_WIDTH * bad / total if total else 0
        share = f"{100 * good / total:.0f}% {good_words}" if total else none_words
        rows.append(
            _label(y, label)
            + _rect(LABEL_WIDTH, y, ok, "bar ok")
            + _rect(LABEL_WIDTH + ok, y, late, "bar late")
            + _text(LABEL_WIDTH + BAR_WIDTH + 6, y, share)
        )
    return _svg(title, len(items), "".join(rows))


def stacked_bars(
    title: str, items: list[tuple[str, list[int]]], parts: list[tuple[str, str]]
) -> Markup:
    """One bar per item made of its parts ((name, css) each, in the legend above), scaled to
    the largest total; the total beside it."""
    if not items:
        return Markup("")
    top = max(sum(values) for _, values in items) or 1
    rows = [_legend(parts, LABEL_WIDTH)]
    for i, (label, values) in enumerate(items, start=1):
        y, x = i * ROW, float(LABEL_WIDTH)
        row = _label(y, label)
        for (name, css), value in zip(parts, values, strict=True):
            width = BAR_WIDTH * value / top
            row += _rect(x, y, width, f"bar {css}", f"{label}, {name}: {_number(value)}")
            x += width
        rows.append(row + _text(x + 6, y, _number(sum(values))))
    return _svg(title, len(items) + 1, "".join(rows))


def columns(title: str, labels: list[str], series: list[tuple[str, str, list[int]]]) -> Markup:
    """Stacked columns over time, one per interval (`labels`), each made of the series ((name,
    css, a value per interval), in the legend above); the tallest total is the scale's top."""
    if not labels:
        return Markup("")
    count = len(labels)
    step = (WIDTH - AXIS_WIDTH - 10) / count
    width = max(2.0, min(40.0, step * 0.7))
    totals = [sum(values[i] for _, _, values in series) for i in range(count)]
    top = max(totals) or 1
    base = ROW + PLOT_HEIGHT
    # Every nth interval labelled, so that the labels never overlap.
    every = max(1, math.ceil(TICK_WIDTH / step))
    body = [
        _legend([(name, css) for name, css, _ in series], AXIS_WIDTH),
        f'<text x="{AXIS_WIDTH - 6}" y="{ROW + 10}" text-anchor="end">{_number(top)}</text>',
        f'<text x="{AXIS_WIDTH - 6}" y="{base}" text-anchor="end">0</text>',
        f'<line x1="{AXIS_WIDTH}" y1="{base}" x2="{WIDTH - 10}" y2="{base}" class="axis"/>',
    ]
    for i, label in enumerate(labels):
        x = AXIS_WIDTH + i * step + (step - width) / 2
        y = float(base)
        for name, css, values in series:
            height = PLOT_HEIGHT * values[i] / top
            y -= height
            if height:
                body.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}"'
                    f' class="bar {escape(css)}"><title>{escape(label)}, {escape(name)}:'
                    f" {_number(values[i])}</title></rect>"
                )
        if i % every == 0:
            body.append(
                f'<text x="{x + width / 2:.1f}" y="{base + 14}" text-anchor="middle">'
                f"{escape(_short(label))}</text>"
            )
    return _svg(title, 0, "".join(body), height=base + 20)


def _legend(parts: list[tuple[str, str]], x: float) -> str:
    out = []
    for name, css in parts:
        out.append(
            f'<rect x="{x:.1f}" y="5" width="10" height="10" class="bar {escape(css)}"/>'
            + _text(x + 14, 0, name)
        )
        x += 14 + 7 * len(name) + 16
    return "".join(out)


def _label(y: int, label: str) -> str:
    return (
        f'<text x="{LABEL_WIDTH - 6}" y="{y + 15}" text-anchor="end">{escape(_short(label))}</text>'
    )


def _rect(x: float, y: int, width: float, css: str, tip: str = "") -> str:
    shape = f'<rect x="{x:.1f}" y="{y + 4}" width="{width:.1f}" height="{ROW - 8}" class="{css}"'
    return f"{shape}><title>{escape(tip)}</title></rect>" if tip else f"{shape}/>"


def _text(x: float, y: int, text: str) -> str:
    return f'<text x="{x:.1f}" y="{y + 15}">{escape(text)}</text>'


def _svg(title: str, count: int, body: str, height: int | None = None) -> Markup:
    """`count` rows tall, or `height`."""
    width = WIDTH
    height = count * ROW + 4 if height is None else height
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


OUTCOMES = [
    (AlertState.OPEN, "open"),
    (AlertState.DISMISSED, "dismissed"),
    (AlertState.CONVERTED, "converted"),
]
"""Each state's css class, its colour in style.css."""
KINDS = [(kind, kind.value.replace("_", "-")) for kind in AlertKind]


def health_charts(report: ChannelHealth) -> dict[str, Markup]:
    """The channel-health view's charts, each beside the table holding the same figures."""
    labels = [i.label for i in report.over_time]
    per = report.unit
    return {
        "by_outcome": columns(
            f"Alerts detected per {per}, by their outcome now",
            labels,
            [
                (words(state), css, [i.by_state(state) for i in report.over_time])
                for state, css in OUTCOMES
            ],
        ),
        "by_kind": columns(
            f"Alerts detected per {per}, by kind",
            labels,
            [
                (words(kind), css, [i.by_kind(kind) for i in report.over_time])
                for kind, css in KINDS
            ],
        ),
        "kinds": stacked_bars(
            "Alerts of each kind by their outcome now",
            [(words(k.kind), [k.open, k.dismissed, k.converted]) for k in report.kinds],
            [(words(state), css) for state, css in OUTCOMES],
        ),
        "resolution": bars(
            "Median hours from detection to decision",
            [
                (words(r.kind) if r.kind else "every kind", r.median_hours)
                for r in report.resolution
                if r.median_hours is not None
            ],
            " h",
        ),
        "caught": split_bars(
            "Conflicts caught before a dispute was filed, and filed without an alert",
            [("Conflicts", report.caught.converted, report.caught.filed_without_alert)]
            if report.caught.converted or report.caught.filed_without_alert
            else [],
            good_words="caught",
            none_words="no conflicts",
        ),
        "accounts": bars("Alerts per account", [(h.name, h.alerts) for h in report.accounts]),
        "territories": bars(
            "Alerts per territory", [(h.name, h.alerts) for h in report.territories]
        ),
        "pairs": bars("Alerts per pair of partners", [(h.name, h.alerts) for h in report.pairs]),
    }
