"""Sign-in throttling: a progressive delay, then a temporary lockout, per account and per client
address, counted in the database (several web processes share the count; a restart forgets
nothing).

Nobody is kept waiting in a request: an attempt that comes before its time is refused at once
(429 and when to try again) and its password is not even checked, so the right password during
a lockout is refused like any other. An attempt that may go ahead is first counted as a failure
of the account, in the transaction that checked the count, and the count is cleared if the
password was right: parallel guesses at one account each see the ones before them, however many
arrive at once. Failures from an address are counted once the password was checked (a race there
gives a few more guesses spread over accounts, each still under its own count).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, select

from models.tables import SignInThrottle
from models.text import problem


class Kind(StrEnum):
    ACCOUNT = "account"
    ADDRESS = "address"


@dataclass(frozen=True)
class Limits:
    free_failures: int
    """Failures allowed before each next attempt waits."""
    lockout_failures: int
    """Failures after which the wait is the whole lockout."""
    lockout: timedelta

    def wait(self, failures: int) -> timedelta:
        """How long the next attempt waits after this many failures: nothing, then 1 s doubling
        with each failure, then the lockout."""
        if failures >= self.lockout_failures:
            return self.lockout
        if failures < self.free_failures:
            return timedelta(0)
        return min(timedelta(seconds=2 ** (failures - self.free_failures)), self.lockout)


@dataclass(frozen=True)
class Policy:
    account: Limits
    address: Limits

    def limits(self, kind: Kind) -> Limits:
        return self.account if kind is Kind.ACCOUNT else self.address


def subject(kind: Kind, value: str | None) -> str | None:
    """What a row is keyed by, or None when nothing can be (a login no row can hold: it is
    nobody's, and only its address is counted)."""
    if not value:
        return None
    limit = 320 if kind is Kind.ACCOUNT else 64
    if len(value) > limit or problem(value, multiline=False) is not None:
        return None if kind is Kind.ACCOUNT else "unreadable"
    return value


def _row(session: Session, kind: Kind, key: str, now: datetime) -> SignInThrottle:
    """The row, locked for this transaction; created (with no failures) when missing."""
    row = session.get(SignInThrottle, (kind.value, key), with_for_update=True)
    if row is not None:
        return row
    try:
        with session.begin_nested():
            session.add(
                SignInThrottle(
                    kind=kind.value,
                    subject=key,
                    failures=0,
                    last_failure_at=now,
                    next_attempt_at=now,
                    refusals=0,
                )
            )
    except IntegrityError:  # another process created it meanwhile: take theirs
        pass
    row = session.get(SignInThrottle, (kind.value, key), with_for_update=True)
    assert row is not None
    return row


def _failures(row: SignInThrottle, limits: Limits, now: datetime) -> int:
    """The row's failures, forgetting them once a lockout's length has passed since the last."""
    return row.failures if now - row.last_failure_at < limits.lockout else 0


def next_attempt(
    session: Session, policy: Policy, keys: dict[Kind, str], now: datetime
) -> datetime:
    """When the next attempt may be made for these keys (now or earlier: at once). The account's
    row is created if missing and locked until the transaction ends, so concurrent attempts at
    one account take turns here, each seeing the failure the one before it counted."""
    earliest = now
    for kind, key in keys.items():
        row = (
            _row(session, kind, key, now)
            if kind is Kind.ACCOUNT
            else session.get(SignInThrottle, (kind.value, key))
        )
        if row is not None and _failures(row, policy.limits(kind), now):
            earliest = max(earliest, row.next_attempt_at)
    return earliest


def count_failure(session: Session, policy: Policy, kind: Kind, key: str, now: datetime) -> int:
    """Count a failure; the number of failures it makes."""
    limits = policy.limits(kind)
    row = _row(session, kind, key, now)
    row.failures = _failures(row, limits, now) + 1
    row.last_failure_at = now
    row.next_attempt_at = now + limits.wait(row.failures)
    row.refusals = 0
    session.add(row)
    return row.failures


def count_refusal(session: Session, kind: Kind, key: str) -> int:
    """Count an attempt refused for coming too early; how many since the last failure."""
    row = session.get(SignInThrottle, (kind.value, key))
    if row is None:
        return 1
    row.refusals += 1
    session.add(row)
    return row.refusals


def forget_old(session: Session, policy: Policy, now: datetime) -> None:
    """Housekeeping: rows whose failures are forgotten anyway (a lockout's length since the
    last) go, so logins typed once and never again do not pile up."""
    longest = max(policy.account.lockout, policy.address.lockout)
    session.exec(
        delete(SignInThrottle).where(
            col(SignInThrottle.last_failure_at) < now - longest,
            col(SignInThrottle.next_attempt_at) <= now,
        )
    )


def clear(session: Session, kind: Kind, key: str) -> None:
    row = session.get(SignInThrottle, (kind.value, key))
    if row is not None:
        session.delete(row)


def locked_accounts(session: Session, now: datetime) -> dict[str, datetime]:
    """Each account held back now (delayed or locked), with when it may try again."""
    rows = session.exec(
        select(SignInThrottle).where(
            SignInThrottle.kind == Kind.ACCOUNT.value, SignInThrottle.next_attempt_at > now
        )
    ).all()
    return {row.subject: row.next_attempt_at for row in rows}
