"""A DNS server for the tests (dnslib, on 127.0.0.1 and a free UDP port): the zones a test
publishes, and names that fail the way real DNS fails (SERVFAIL, or no answer at all). Mail
authentication is checked against it; nothing reaches the network."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dnslib import QTYPE, RCODE, RR, TXT, A, DNSError, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class Zones(BaseResolver):  # type: ignore[misc]
    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[Any]] = {}
        self.servfail: set[str] = set()
        self.silent: set[str] = set()
        self.asked: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        name = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        with self._lock:
            self.asked.append((name, qtype))
            if name in self.silent:
                # dnslib sends nothing back: the client waits out its timeout.
                raise DNSError(f"{name}: no answer (the test's outage)")
            reply = request.reply()
            if name in self.servfail:
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            found = self.records.get((name, qtype), [])
            if not found and not any(n == name for n, _ in self.records):
                reply.header.rcode = RCODE.NXDOMAIN
            for rdata in found:
                reply.add_answer(RR(name, getattr(QTYPE, qtype), rdata=rdata, ttl=60))
        return reply


class DnsStub:
    def __init__(self) -> None:
        self.zones = Zones()
        quiet = DNSLogger(logf=lambda _: None)
        self.server = DNSServer(self.zones, address="127.0.0.1", port=0, logger=quiet)
        self.port: int = self.server.server.server_address[1]
        self.address = f"127.0.0.1:{self.port}"

    def txt(self, name: str, *values: str) -> None:
        """One TXT record per value; a value over 255 characters is split into strings, as a
        real zone holds a DKIM key."""
        self.zones.records.setdefault((name.lower(), "TXT"), []).extend(
            TXT([v[i : i + 255].encode() for i in range(0, len(v), 255)] or [b""]) for v in values
        )

    def a(self, name: str, address: str) -> None:
        self.zones.records.setdefault((name.lower(), "A"), []).append(A(address))

    def servfail(self, name: str) -> None:
        self.zones.servfail.add(name.lower())

    def silence(self, name: str) -> None:
        self.zones.silent.add(name.lower())

    def heal(self) -> None:
        self.zones.servfail.clear()
        self.zones.silent.clear()


@contextmanager
def dns_stub() -> Iterator[DnsStub]:
    stub = DnsStub()
    stub.server.start_thread()
    try:
        yield stub
    finally:
        stub.server.stop()
        stub.server.server.server_close()
