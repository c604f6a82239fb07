"""/metrics at scale: the database time of one scrape of the business metrics with a long audit
trail (issue 19, item 7: ~2 s a scrape at 2 M entries, when every scrape counted the whole
trail by action).

    python -m bench.metrics --entries 2000000 --database postgresql+psycopg://postgres@127.0.0.1:5432/postgres

Makes a database of its own on that server (dropped at the end), migrated to head, with one
dispute and ENTRIES audit entries (the counted actions among them as a real trail has them) and
OUTBOX outgoing emails (one in a thousand pending, one in five thousand failed, the rest sent),
then times: the whole-trail count every scrape used to make, the outbox's count by state every
scrape used to make, a collector's first scrape (which counts the trail and the sent mail), and
its next scrapes after new entries and mail arrive (the newest entries, the mail backlog).
"""

from __future__ import annotations

import argparse
import time

from sqlalchemy import text

from accord.directory.demo import DEMO
from accord.directory.records import import_directory
from accord.platform.db import SessionFactory, make_engine
from accord.platform.observability import COUNTED_ACTIONS, BusinessMetrics
from accord.platform.schema import upgrade
from bench.common import Goal, Report, add_arguments, pct, scratch_database

FILL = """
INSERT INTO dispute_event (dispute_number, seq, step, at, actor_id, actor_role, action,
                           content, prev_hash, hash)
SELECT 'DSP-2026-000001', s, s, now(), 'system', 'SYSTEM',
       CASE WHEN s % 10 = 0 THEN (ARRAY[{actions}])[1 + (s / 10) % {n}] ELSE 'note_added' END,
       '{{}}', repeat('0', 64), repeat('0', 64)
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS s
"""
MAIL = """
INSERT INTO outbox_message (key, dispute_number, template, recipient, subject, text_body,
                            html_body, message_id, state, attempts, created_at, sent_at)
SELECT 'k' || s, 'DSP-2026-000001', 'stage_changed', 'nora@northwind.example',
       'Dispute DSP-2026-000001: stage changed', repeat('Dear partner, ', 40),
       repeat('<p>Dear partner,</p>', 30), '<m' || s || '@accord.example>',
       CASE WHEN s % 1000 = 0 THEN 'pending' WHEN s % 5000 = 1 THEN 'failed' ELSE 'sent' END,
       1, now(), now()
FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS s
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=2_000_000)
    parser.add_argument("--outbox", type=int, default=2_000_000)
    parser.add_argument("--scrapes", type=int, default=20)
    parser.add_argument(
        "--database", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    add_arguments(parser)
    args = parser.parse_args()
    report = Report("metrics", args, label="metrics (postgresql)")
    with scratch_database(args.database, "bench_metrics") as url:
        upgrade(url)
        engine = make_engine(url)
        actions = ", ".join(f"'{a}'" for a in COUNTED_ACTIONS)
        fill = text(FILL.format(actions=actions, n=len(COUNTED_ACTIONS)))
        with SessionFactory(engine).begin() as session:
            import_directory(session, DEMO)
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO dispute (number, category, claimant_id, respondent_ids,"
                    " party_key, contested_objects, summary, facts, desired_remedy, amount_at_stake,"
                    " currency,"
                    " occurred_on, stage, playbook_version, filed_by, filed_at, updated_at)"
                    " VALUES ('DSP-2026-000001', 'DEAL_REGISTRATION', 'northwind', '[]', 'x',"
                    " '[]', 's', 'f', 'd', 1000, 'USD', now(), 'TRIAGE', '2026.1', 'n', now(), now())"
                )
            )
        started = time.perf_counter()
        for first in range(1, args.entries + 1, 200_000):
            with engine.begin() as connection:
                connection.execute(
                    fill, {"first": first, "last": min(first + 199_999, args.entries)}
                )
        for first in range(1, args.outbox + 1, 200_000):
            with engine.begin() as connection:
                connection.execute(
                    text(MAIL), {"first": first, "last": min(first + 199_999, args.outbox)}
                )
        with engine.begin() as connection:
            connection.execute(text("ANALYZE dispute_event"))
            connection.execute(text("ANALYZE outbox_message"))
        report.note(
            f"{args.entries:,} audit entries written in {time.perf_counter() - started:.0f} s"
        )
        sessions = SessionFactory(engine)

        whole = []
        for _ in range(3):
            started = time.perf_counter()
            with sessions.read() as session:
                session.execute(
                    text(
                        "SELECT action, count(*) FROM dispute_event WHERE action IN"
                        f" ({actions}) GROUP BY action"
                    )
                ).all()
            whole.append(time.perf_counter() - started)
        report.figure("whole-trail count (what every scrape made before)", min(whole) * 1000, "ms")
        mail = []
        for _ in range(3):
            started = time.perf_counter()
            with sessions.read() as session:
                session.execute(
                    text("SELECT state, count(*) FROM outbox_message GROUP BY state")
                ).all()
            mail.append(time.perf_counter() - started)
        report.figure(
            f"the outbox counted by state at {args.outbox:,} emails (every scrape, before)",
            min(mail) * 1000,
            "ms",
        )

        collector = BusinessMetrics(sessions)
        started = time.perf_counter()
        list(collector.collect())
        first = (time.perf_counter() - started) * 1000
        report.figure("a process's first scrape (counts the trail once)", first, "ms")
        seq = args.entries
        times = []
        for _ in range(args.scrapes):
            with engine.begin() as connection:  # new entries and mail between scrapes, as live
                connection.execute(fill, {"first": seq + 1, "last": seq + 50})
                connection.execute(
                    text(MAIL), {"first": args.outbox + seq + 1, "last": args.outbox + seq + 10}
                )
            seq += 50
            started = time.perf_counter()
            list(collector.collect())
            times.append(time.perf_counter() - started)
        # The goal: a scrape every 30 s costs the database well under a second a minute.
        report.figure(
            "a later scrape, p50 (50 new entries and 10 emails since the last)",
            pct(times, 50) * 1000,
            "ms",
            Goal(at_most=50),
        )
        report.figure("a later scrape, p95", pct(times, 95) * 1000, "ms", Goal(at_most=100))
        engine.dispose()
    report.finish()


if __name__ == "__main__":
    main()
