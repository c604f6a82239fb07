"""Applying remedies through their adapters, exactly once, then verifying them."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from accord.platform import wording
from accord.platform.db import SessionFactory
from accord.remedies.adapters import RemedyAdapter, RemedyRefused, RemedyRetryable
from models.enums import RemedyKind, RemedyState
from models.payloads import RemedyOrder, RemedyResult, RemedyWaiver
from models.tables import RemedyApplication


class RemedyActivities:
    def __init__(
        self,
        sessions: SessionFactory,
        ledger: RemedyAdapter,
        routed: Mapping[RemedyKind, RemedyAdapter] | None = None,
    ) -> None:
        self.sessions = sessions
        self.ledger = ledger
        self.routed = dict(routed or {})

    def adapter_for(self, kind: RemedyKind) -> RemedyAdapter:
        return self.routed.get(kind, self.ledger)

    def _row(self, order: RemedyOrder, adapter: RemedyAdapter) -> RemedyApplication:
        with self.sessions.begin() as session:
            row = session.get(RemedyApplication, order.key)
            if row is None:
                row = RemedyApplication(
                    key=order.key,
                    dispute_number=order.number,
                    position=order.position,
                    kind=order.remedy.kind,
                    remedy=order.remedy.model_dump(mode="json"),
                    adapter=adapter.name,
                    state=RemedyState.PENDING,
                    created_at=datetime.now(UTC),
                )
                session.add(row)
            return row

    def _update(self, key: str, **changes: object) -> RemedyApplication:
        with self.sessions.begin() as session:
            row = session.get(RemedyApplication, key)
            assert row is not None
            for name, value in changes.items():
                setattr(row, name, value)
            session.add(row)
            return row

    def _failed(self, row: RemedyApplication, error: str) -> None:
        self._update(
            row.key, state=RemedyState.FAILED, attempts=row.attempts + 1, last_error=error[:2000]
        )

    def _result(self, row: RemedyApplication) -> RemedyResult:
        return RemedyResult(
            key=row.key, state=row.state.value, adapter=row.adapter, external_ref=row.external_ref
        )

    @activity.defn
    async def waive_remedy(self, waiver: RemedyWaiver) -> RemedyResult:
        """An admin gave up on a remedy, with a reason; it is never applied after this."""

        def waive() -> RemedyApplication:
            with self.sessions.begin() as session:
                row = session.get(RemedyApplication, waiver.key)
                if row is None:
                    raise ApplicationError(
                        f"no remedy {waiver.key}", type="UnknownRemedy", non_retryable=True
                    )
                if row.state in (RemedyState.APPLIED, RemedyState.VERIFIED):
                    # Applied after all (a target that answered late): waiving it would hide a
                    # remedy that took effect. Retrying verifies it instead.
                    reference = f" (reference {row.external_ref})" if row.external_ref else ""
                    raise ApplicationError(
                        f"position: remedy {row.position + 1} was applied through "
                        f"{wording.adapter(row.adapter)}"
                        f"{reference}; it cannot be waived. Retry it to verify it",
                        type="RemedyApplied",
                        non_retryable=True,
                    )
                if row.state is not RemedyState.WAIVED:
                    row.state = RemedyState.WAIVED
                    row.waived_reason = f"{waiver.reason} ({waiver.actor_id})"
                    session.add(row)
                return row

        return self._result(await asyncio.to_thread(waive))

    @activity.defn
    async def apply_remedy(self, order: RemedyOrder) -> RemedyResult:
        """Apply (once, by key) and verify. A retry after a crash finds what was done and goes on
        from there; a target that answers twice still yields one application."""
        adapter = self.adapter_for(order.remedy.kind)
        row = await asyncio.to_thread(self._row, order, adapter)
        if row.state in (RemedyState.VERIFIED, RemedyState.WAIVED):
            return self._result(row)
        if row.state is not RemedyState.APPLIED:
            try:
                reference = await adapter.apply(order)
            except RemedyRefused as exc:
                await asyncio.to_thread(self._failed, row, str(exc))
                raise ApplicationError(str(exc), type="RemedyRefused", non_retryable=True) from exc
            except RemedyRetryable as exc:
                await asyncio.to_thread(self._failed, row, str(exc))
                raise ApplicationError(str(exc), type="RemedyNotApplied") from exc
            row = await asyncio.to_thread(
                self._update,
                order.key,
                state=RemedyState.APPLIED,
                external_ref=reference,
                applied_at=datetime.now(UTC),
            )
        try:
            verified = await adapter.verify(order)
        except RemedyRetryable as exc:
            await asyncio.to_thread(self._update, order.key, last_error=str(exc)[:2000])
            raise ApplicationError(str(exc), type="RemedyNotVerified") from exc
        if not verified:
            message = f"{adapter.name} does not show {order.key} as applied"
            await asyncio.to_thread(self._update, order.key, last_error=message)
            raise ApplicationError(message, type="RemedyNotVerified")
        row = await asyncio.to_thread(
            self._update, order.key, state=RemedyState.VERIFIED, verified_at=datetime.now(UTC)
        )
        return self._result(row)
