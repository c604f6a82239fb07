"""Responsiveness benchmark: how long /health takes to answer while the intake reads header
bombs, with the web app, the worker and the intake on one event loop as `accord run` has them.

    make bench-responsiveness
    python -m bench.responsiveness --bombs 2 --size 800000
    python -m bench.responsiveness --in-loop     # the reading on the loop, as before issue 14

A real dev server, a real worker, the web app (uvicorn) and the intake's SMTP receiver and
processor in this process's loop; /health is asked every 50 ms from a thread of its own, first
with nothing to do, then while the bombs are read (each in its own process, within the parse
budget). The goal is every answer within a second.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time

import aiosmtplib
import httpx
from sqlmodel import select

from accord.runtime.embedded import wait_for_port
from accord.runtime.wiring import build_worker
from bench.common import BenchStack, free_port, pct
from intake.processor import IntakeProcessor
from intake.reading import read
from intake.receiver import start_receiver
from models.enums import InboundState
from models.tables import InboundMessage
from tests.intake_corpus import header_bomb
from web.serve import serve_web


def probe(url: str, done: threading.Event, latencies: list[float]) -> None:
    with httpx.Client(timeout=120) as client:
        while not done.is_set():
            began = time.perf_counter()
            client.get(url)
            latencies.append(time.perf_counter() - began)
            done.wait(0.05)


def summary(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"{name:<28} {len(ms):>5} answers   p50 {statistics.median(ms):>7.1f} ms   "
        f"p95 {pct(ms, 95):>8.1f} ms   max {max(ms):>8.1f} ms"
    )


async def main(args: argparse.Namespace) -> None:
    bench = BenchStack("responsiveness")
    settings = bench.settings
    services = bench.seed(case_limit=100)
    env = await bench.temporal()
    settings.temporal_address = env.client.service_client.config.target_host
    settings.web_port = free_port()
    settings.web_metrics_port = free_port()
    settings.intake_parse_seconds = args.budget
    settings.intake_max_attempts = 1
    processor = IntakeProcessor(services, env.client)
    stop, wake = asyncio.Event(), asyncio.Event()
    intake_port = free_port()
    receiver = start_receiver(processor, wake, "127.0.0.1", intake_port, settings.intake_max_bytes)
    url = f"http://127.0.0.1:{settings.web_port}/health"
    idle: list[float] = []
    busy: list[float] = []
    bombs = [header_bomb(args.size + i) for i in range(args.bombs)]

    def unfinished() -> int:
        with services.sessions.read() as session:
            return len(
                session.exec(
                    select(InboundMessage).where(InboundMessage.state == InboundState.RECEIVED)
                ).all()
            )

    try:
        async with build_worker(env.client, services, settings.task_queue):
            parts = [asyncio.create_task(serve_web(settings, stop, services))]
            if not args.in_loop:
                parts.append(asyncio.create_task(processor.run(stop, wake)))
            await wait_for_port("127.0.0.1", settings.web_port, 30, "the web app")
            done = threading.Event()
            prober = threading.Thread(target=probe, args=(url, done, idle))
            prober.start()
            await asyncio.sleep(3)
            done.set()
            await asyncio.to_thread(prober.join)
            done = threading.Event()
            prober = threading.Thread(target=probe, args=(url, done, busy))
            prober.start()
            began = time.perf_counter()
            if args.in_loop:
                for raw in bombs:  # what the processor did before: read on the loop
                    await asyncio.sleep(0.2)
                    read(raw)
                await asyncio.sleep(0.5)
            else:
                for raw in bombs:
                    await aiosmtplib.send(
                        raw,
                        sender="nora@northwind.example",
                        recipients=["disputes@accord.localhost"],
                        hostname="127.0.0.1",
                        port=intake_port,
                    )
                await asyncio.sleep(0.5)
                while await asyncio.to_thread(unfinished):
                    await asyncio.sleep(0.2)
            reading = time.perf_counter() - began
            done.set()
            await asyncio.to_thread(prober.join)
            stop.set()
            await asyncio.gather(*parts)
    finally:
        receiver.stop()
        await env.shutdown()
        bench.stop()
    where = "on the event loop (before)" if args.in_loop else "in child processes"
    print(
        f"\nAccord responsiveness — /health every 50 ms while {args.bombs} header bomb(s) of "
        f"{args.size:,} bytes are read {where}, parse budget {args.budget:g} s; web app, "
        "worker and intake on one loop; SQLite, 2 cores"
    )
    print(summary("idle", idle))
    print(summary(f"while reading ({reading:.1f} s)", busy))
    print(f"answers over 1 s while reading: {sum(v > 1 for v in busy)} of {len(busy)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bombs", type=int, default=2)
    parser.add_argument("--size", type=int, default=800_000)
    parser.add_argument("--budget", type=float, default=10.0)
    parser.add_argument("--in-loop", action="store_true")
    asyncio.run(main(parser.parse_args()))
