"""Importing channel data (issue 20, item 1: "import 100,000 registrations in under a minute
here").

    python -m bench.channel_import --rows 100000 [--database postgresql+psycopg://...]

Writes a CSV of ROWS deal registrations (40 partners, customer names with the variations CRMs
hold), then imports it as `accord channel import` does, three times: into an empty table, the
same file again (every row unchanged), and the file with 1 % of its rows modified later (those
updated). On SQLite in a scratch file, or on a scratch PostgreSQL database made on the server
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

from accord.channel.imports import import_file
from accord.platform.db import SessionFactory, make_engine
from accord.platform.schema import upgrade
from bench.common import Goal, Report, add_arguments, scratch_database
from models.enums import ChannelKind, ImportFormat, PartnerTier
from models.tables import Partner, Territory

PARTNERS = 40
GOAL_SECONDS = 60.0

FORMS = ["Inc.", "Corp.", "Corporation", "GmbH", "Ltd", "LLC", "S.A.", "AG", "plc", ""]
WORDS = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Wonka",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Hooli",
    "Vandelay",
    "Massive",
    "Dynamic",
    "Oceanic",
    "Northern",
    "Blue",
    "Apex",
]
HEADER = (
    "external_id,partner_id,customer_name,customer_domain,customer_address,country,"
    "territory_code,product,amount,currency,status,registered_at,modified_at"
)


def registrations_csv(rows: int, *, seed: int = 7, later: float = 0.0) -> bytes:
    """ROWS registrations; `later`: the share of them modified a day after the first file."""
    pick = random.Random(seed)
    changed = random.Random(seed + 1)
    out = io.StringIO()
    out.write(HEADER + "\n")
    for n in range(rows):
        a, b = pick.choice(WORDS), pick.choice(WORDS)
        name = f"{a} {b} {n % 9973} {pick.choice(FORMS)}".strip()
        domain = f"{a}{b}{n % 9973}.example".lower()
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


def timed_import(sessions: SessionFactory, data: bytes) -> tuple[float, object]:
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
        first = registrations_csv(args.rows)
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
                f"  created {done.created:,}, updated {done.updated:,},"  # type: ignore[attr-defined]
                f" unchanged {done.unchanged:,}"  # type: ignore[attr-defined]
            )
            report.cpu(label, usage[0], args.rows // 1000, "1,000 rows")
    report.finish()


if __name__ == "__main__":
    main()
