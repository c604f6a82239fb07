"""Importing channel data (issue 20, item 1: "import 100,000 registrations in under a minute
here").

    python -m bench.channel_import --rows 100000 [--database postgresql+psycopg://...]

Writes a CSV of ROWS deal registrations (40 partners; one in five registers a customer another
partner registered before, its name varied), then imports it as `accord channel import` does,
overlap detection included, three times: into an empty table, the same file again (every row
unchanged), and the file with 1 % of its rows modified later (those updated, and looked at
again for overlaps). On SQLite in a scratch file, or on a scratch PostgreSQL database made on the server
--database names (dropped at the end). Prints each import's time and rows per second.
"""

from __future__ import annotations

import argparse
import io
import random
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from sqlmodel import select

from accord.channel.imports import import_file
from accord.platform.db import SessionFactory, make_engine
from accord.platform.schema import upgrade
from bench.common import Goal, Report, add_arguments, scratch_database
from models.enums import AlertKind, ChannelKind, ImportFormat, PartnerTier
from models.tables import ChannelImport, ConflictAlert, Partner, Territory

PARTNERS = 40
GOAL_SECONDS = 60.0

FORMS = ["Inc.", "Corp.", "Corporation", "GmbH", "Ltd", "LLC", "S.A.", "AG", "plc", ""]
SYLLABLES = [
    "ka",
    "lo",
    "ri",
    "ven",
    "tor",
    "mi",
    "sa",
    "dex",
    "ar",
    "bel",
    "cor",
    "dan",
    "el",
    "fin",
    "gar",
    "hol",
    "is",
    "jen",
    "kor",
    "lum",
    "mar",
    "nor",
    "os",
    "pel",
    "quin",
    "ros",
    "sel",
    "tam",
    "ul",
    "vor",
    "wel",
    "xan",
    "yor",
    "zel",
    "bra",
    "cle",
    "dro",
    "fla",
    "gro",
    "pra",
]
INDUSTRY = ["Logistics", "Systems", "Foods", "Engineering", "Software", "Pharma", "Media", "Motors"]
HEADER = (
    "external_id,partner_id,customer_name,customer_domain,customer_address,country,"
    "territory_code,product,amount,currency,status,registered_at,modified_at"
)


def customer(index: int) -> tuple[str, str]:
    """A distinct invented company for each index below 40**3 * 8: its name and domain."""
    a, rest = index % 40, index // 40
    b, rest = rest % 40, rest // 40
    c, rest = rest % 40, rest // 40
    stem = SYLLABLES[a] + SYLLABLES[b] + SYLLABLES[c]
    industry = INDUSTRY[rest % len(INDUSTRY)]
    return f"{stem.capitalize()} {industry}", f"{stem}-{industry.lower()}.example"


def registrations_csv(
    rows: int, *, seed: int = 7, later: float = 0.0, owners: list[int] | None = None
) -> bytes:
    """ROWS registrations of distinct customers, but one in five a customer another partner
    registered before (with its legal form changed, or a letter wrong), as a CRM's duplicates
    are; `later`: the share of them modified a day after the first file; `owners`, when given,
    gets each row's customer (the truth detection is measured against)."""
    pick = random.Random(seed)
    changed = random.Random(seed + 1)
    out = io.StringIO()
    out.write(HEADER + "\n")
    customers = 0
    for n in range(rows):
        if n % 5 == 4 and customers:
            index = pick.randrange(customers) * 7919 % (40**3 * 8)
            name, domain = customer(index)
            if pick.random() < 0.5:  # a letter of the company's own word dropped
                at = pick.randrange(1, name.index(" "))
                name = name[:at] + name[at + 1 :]
        else:
            index = customers * 7919 % (40**3 * 8)
            name, domain = customer(index)
            customers += 1
        if owners is not None:
            owners.append(index)
        name = f"{name} {pick.choice(FORMS)}".strip()
        domain = domain if pick.random() < 0.7 else ""
        modified = "2026-11-02T10:00:00Z"
        status = "approved"
        if later and changed.random() < later:
            modified, status = "2026-11-03T10:00:00Z", "won"
        out.write(
            f'DR-{n:07d},p{1 + n % PARTNERS},"{name}",{domain},"{n} Main Street, Springfield",'
            f"DE,{'DACH' if n % 3 == 0 else ''},Widgets,{1000 + n % 90000}.00,EUR,{status},"
            f"2026-11-01T09:00:00Z,{modified}\n"
        )
    return out.getvalue().encode()


def seed(sessions: SessionFactory) -> None:
    with sessions.begin() as session:
        for n in range(1, PARTNERS + 1):
            session.add(
                Partner(
                    id=f"p{n}",
                    name=f"Partner {n}",
                    tier=PartnerTier.GOLD,
                    regions=["EMEA"],
                    calendar="default",
                )
            )
        session.add(Territory(code="DACH", name="DACH", exclusive=True, countries=["DE"]))


def timed_import(sessions: SessionFactory, data: bytes) -> tuple[float, ChannelImport]:
    started = time.perf_counter()
    done = import_file(
        sessions,
        kind=ChannelKind.REGISTRATION,
        fmt=ImportFormat.CSV,
        file_name="registrations.csv",
        data=data,
        started_by="bench",
    )
    return time.perf_counter() - started, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--database", default="", help="a PostgreSQL server's URL; SQLite when not given"
    )
    add_arguments(parser)
    args = parser.parse_args()
    backend = "postgresql" if args.database else "sqlite"
    report = Report("channel_import", args, label=f"channel-data import ({backend})")
    with ExitStack() as stack:
        if args.database:
            url = stack.enter_context(scratch_database(args.database, "bench_channel"))
        else:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            url = f"sqlite:///{folder / 'accord.db'}"
        upgrade(url)
        sessions = SessionFactory(make_engine(url))
        stack.callback(sessions.engine.dispose)
        seed(sessions)
        owners: list[int] = []
        first = registrations_csv(args.rows, owners=owners)
        report.note(f"{args.rows:,} registrations, {len(first) / 1e6:.1f} MB of CSV")
        goal = Goal(at_most=GOAL_SECONDS * args.rows / 100_000)
        for label, data in (
            ("first import (every row new)", first),
            ("the same file again (every row unchanged)", first),
            ("1 % of rows modified later", registrations_csv(args.rows, later=0.01)),
        ):
            with report.phase() as usage:
                seconds, done = timed_import(sessions, data)
            report.figure(f"{label}: time", seconds, "s", goal if "first" in label else None)
            report.figure(f"{label}: rows per second", args.rows / seconds, "", digits=0)
            report.note(
                f"  created {done.created:,}, updated {done.updated:,},"
                f" unchanged {done.unchanged:,}; alerts raised"
                f" {done.alerts_raised:,}, brought up to date {done.alerts_refreshed:,}"
            )
            report.cpu(label, usage[0], args.rows // 1000, "1,000 rows")
        detection_quality(report, sessions, owners)
    report.finish()


def detection_quality(report: Report, sessions: SessionFactory, owners: list[int]) -> None:
    """The first import's same-customer alerts against the generator's truth: two rows of one
    customer by different partners should raise one, any other pair none."""
    by_customer: dict[int, list[int]] = {}
    for row, owner in enumerate(owners):
        by_customer.setdefault(owner, []).append(row)
    truth = {
        (a, b)
        for rows in by_customer.values()
        for i, a in enumerate(rows)
        for b in rows[i + 1 :]
        if a % PARTNERS != b % PARTNERS
    }
    with sessions.read() as session:
        keys = session.exec(
            select(ConflictAlert.pair_key).where(ConflictAlert.kind == AlertKind.SAME_CUSTOMER)
        ).all()
    found = set()
    for key in keys:
        a, b = (int(ref.split(":DR-")[1]) for ref in key.split("|"))
        found.add((min(a, b), max(a, b)))
    right = len(found & truth)
    report.figure(
        "detection over the import: precision", right / len(found) if found else 1.0, "", digits=3
    )
    report.figure(
        "detection over the import: recall", right / len(truth) if truth else 1.0, "", digits=3
    )
    report.note(f"  {len(truth):,} pairs of one customer by two partners; {len(found):,} alerts")


if __name__ == "__main__":
    main()
