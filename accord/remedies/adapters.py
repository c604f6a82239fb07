"""Remedy adapters: where a settled or ruled remedy is carried out, exactly once, then verified.

- `LedgerAdapter` records the remedy in the built-in ledger tables (and, for a territory
  reassignment, moves the territory in the directory).
- `WebhookAdapter` POSTs the remedy as JSON to an external system (a CRM, a billing system),
  signed with HMAC-SHA256 and carrying an idempotency key; it verifies with a GET.

Webhook contract, for the receiving system:
    POST <url>                 body: {"idempotency_key", "dispute", "position", "remedy"}
      headers: Idempotency-Key, X-Accord-Timestamp (unix seconds),
               X-Accord-Signature: sha256=hex(hmac_sha256(secret, f"{timestamp}.{body}"))
      answer 2xx once applied (optionally {"reference": "..."}); 409 when that key was
      already applied; 4xx other than 408/409/429 refuses it for good; anything else is retried.
    GET <url>/<idempotency_key>   answer 200 {"status": "applied", ...} once applied, else 404.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

import httpx
from sqlmodel import Session, SQLModel, select

from accord.platform.db import SessionFactory
from models.payloads import (
    CommissionSplit,
    CoSellingResources,
    LeadReroute,
    MdfCredit,
    RebateAdjustment,
    RemedyOrder,
    TerritoryReassignment,
    WrittenWarning,
)
from models.tables import (
    LedgerCommissionSplit,
    LedgerCoSellingResources,
    LedgerLeadReroute,
    LedgerMdfCredit,
    LedgerRebateAdjustment,
    LedgerTerritoryReassignment,
    LedgerWrittenWarning,
    Territory,
)


class RemedyRetryable(Exception):
    """The adapter could not apply or verify the remedy this time; try again."""


class RemedyRefused(Exception):
    """The target refused the remedy; retrying the same request cannot succeed."""


class RemedyAdapter(Protocol):
    name: str

    async def apply(self, order: RemedyOrder) -> str | None:
        """Carry the remedy out (idempotent on order.key); returns an external reference."""
        ...

    async def verify(self, order: RemedyOrder) -> bool:
        """True when the target shows the remedy as applied."""
        ...


# --- the built-in ledger ----------------------------------------------------------------------


def _ledger_row(order: RemedyOrder, at: datetime) -> SQLModel:
    common: dict[str, Any] = {
        "application_key": order.key,
        "dispute_number": order.number,
        "applied_at": at,
    }
    remedy = order.remedy
    match remedy:
        case TerritoryReassignment():
            return LedgerTerritoryReassignment(
                **common,
                territory_code=remedy.territory_code,
                from_partner_id=remedy.from_partner_id,
                to_partner_id=remedy.to_partner_id,
                effective_on=remedy.effective_on,
            )
        case CommissionSplit():
            return LedgerCommissionSplit(
                **common,
                deal_ref=remedy.deal_ref,
                shares={k: str(v) for k, v in remedy.shares.items()},
            )
        case RebateAdjustment():
            return LedgerRebateAdjustment(
                **common,
                partner_id=remedy.partner_id,
                amount=remedy.amount,
                currency=remedy.currency,
            )
        case CoSellingResources():
            return LedgerCoSellingResources(
                **common,
                partner_id=remedy.partner_id,
                resource=remedy.resource,
                hours=remedy.hours,
            )
        case LeadReroute():
            return LedgerLeadReroute(
                **common, lead_ref=remedy.lead_ref, to_partner_id=remedy.to_partner_id
            )
        case MdfCredit():
            return LedgerMdfCredit(
                **common,
                partner_id=remedy.partner_id,
                amount=remedy.amount,
                currency=remedy.currency,
            )
        case WrittenWarning():
            return LedgerWrittenWarning(**common, partner_id=remedy.partner_id, text=remedy.text)
    raise RemedyRefused(f"no ledger table for {order.remedy.kind}")


class LedgerAdapter:
    name = "ledger"

    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions

    def _table(self, order: RemedyOrder) -> type[Any]:
        return type(_ledger_row(order, datetime.now(UTC)))

    def _find(self, session: Session, order: RemedyOrder) -> Any:
        table = self._table(order)
        return session.exec(select(table).where(table.application_key == order.key)).first()

    def apply_sync(self, order: RemedyOrder) -> str:
        with self.sessions.begin() as session:
            row = self._find(session, order)
            if row is None:
                row = _ledger_row(order, datetime.now(UTC))
                session.add(row)
                remedy = order.remedy
                if isinstance(remedy, TerritoryReassignment):
                    territory = session.get(Territory, remedy.territory_code)
                    if territory is not None:
                        territory.partner_id = remedy.to_partner_id
                        session.add(territory)
                session.flush()
            return f"{row.__tablename__}:{row.id}"

    def verify_sync(self, order: RemedyOrder) -> bool:
        with self.sessions.read() as session:
            row = self._find(session, order)
            if row is None:
                return False
            remedy = order.remedy
            if isinstance(remedy, TerritoryReassignment):
                territory = session.get(Territory, remedy.territory_code)
                return territory is None or territory.partner_id == remedy.to_partner_id
            return True

    async def apply(self, order: RemedyOrder) -> str | None:
        return await asyncio.to_thread(self.apply_sync, order)

    async def verify(self, order: RemedyOrder) -> bool:
        return await asyncio.to_thread(self.verify_sync, order)


# --- webhooks -------------------------------------------------------------------------------


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookAdapter:
    def __init__(self, url: str, secret: bytes, timeout: float, name: str = "webhook") -> None:
        self.url = url.rstrip("/")
        self.secret = secret
        self.timeout = timeout
        self.name = name

    def body(self, order: RemedyOrder) -> bytes:
        return json.dumps(
            {
                "idempotency_key": order.key,
                "dispute": order.number,
                "position": order.position,
                "remedy": order.remedy.model_dump(mode="json"),
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()

    async def apply(self, order: RemedyOrder) -> str | None:
        body = self.body(order)
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": order.key,
            "X-Accord-Timestamp": timestamp,
            "X-Accord-Signature": sign(self.secret, timestamp, body),
        }
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise RemedyRetryable(f"{self.url} did not answer in {self.timeout:g} s") from exc
        except httpx.HTTPError as exc:
            raise RemedyRetryable(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 409 or response.is_success:
            return self._reference(response)
        detail = f"{self.url} answered {response.status_code}: {response.text[:300]}"
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            raise RemedyRefused(detail)
        raise RemedyRetryable(detail)

    async def verify(self, order: RemedyOrder) -> bool:
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.get(f"{self.url}/{quote(order.key, safe='')}")
        except httpx.HTTPError as exc:
            raise RemedyRetryable(f"verifying at {self.url}: {exc}") from exc
        if response.status_code == 404:
            return False
        if not response.is_success:
            raise RemedyRetryable(f"verifying at {self.url}: answered {response.status_code}")
        try:
            return bool(response.json().get("status") == "applied")
        except ValueError:
            return False

    @staticmethod
    def _reference(response: httpx.Response) -> str | None:
        try:
            data = response.json()
        except ValueError:
            return None
        reference = data.get("reference") if isinstance(data, dict) else None
        return str(reference) if reference is not None else None
