"""Run the chaos suite and print what was injected and what was found.

    make chaos                                   # 200 disputes, every fault, SQLite
    python -m chaos --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
    python -m chaos --disputes 20 --smtp-down 20 --database-down 10 --kills 5

Exits 1 when anything was lost, duplicated, stuck or wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from chaos.suite import Plan, run_chaos


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--disputes", type=int, default=Plan.disputes)
    parser.add_argument("--concurrency", type=int, default=Plan.concurrency)
    parser.add_argument("--kills", type=int, default=Plan.worker_kills)
    parser.add_argument("--server-restarts", type=int, default=Plan.server_restarts)
    parser.add_argument("--smtp-down", type=float, default=Plan.smtp_down_seconds)
    parser.add_argument("--database-down", type=float, default=Plan.database_down_seconds)
    parser.add_argument("--no-hostile-mail", action="store_true")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the run's folder and logs")
    args = parser.parse_args()
    plan = Plan(
        disputes=args.disputes,
        concurrency=args.concurrency,
        worker_kills=args.kills,
        server_restarts=args.server_restarts,
        smtp_down_seconds=args.smtp_down,
        database_down_seconds=args.database_down,
        hostile_mail=not args.no_hostile_mail,
        database_url=args.database_url,
        seed=args.seed,
    )
    report = asyncio.run(run_chaos(plan, keep=args.keep))
    print(report.table())
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
