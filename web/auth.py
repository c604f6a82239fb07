"""Sign-in: local accounts with argon2 passwords, signed session cookies, personal API tokens.

An account only says who someone is; what they may do comes from the directory (their person
or partner-contact record), read afresh on every request, so deactivating someone in the
directory locks them out at once.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pwdlib import PasswordHash
from pydantic import StringConstraints, TypeAdapter
from sqlmodel import Session, col, delete, select

from accord.directory.records import UnknownActor, resolve_actor
from accord.disputes.access import Viewer
from accord.platform.db import SessionFactory
from models.tables import (
    AccountEvent,
    ApiToken,
    PartnerContact,
    Person,
    SignInThrottle,
    UserAccount,
    WebSession,
)
from models.text import StoredLine, problem
from web import throttle
from web.throttle import Kind

TOKEN_PREFIX = "acc_"  # noqa: S105 - a prefix, not a secret
TokenName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), StoredLine
]
"""What an API token is called (what will use it): one line, like any label."""
_TOKEN_NAME: TypeAdapter[str] = TypeAdapter(TokenName)

_hasher = PasswordHash.recommended()
# Verified against when the login is unknown, so a wrong login costs as long as a wrong
# password and the timing does not tell which accounts exist.
_DUMMY_HASH = _hasher.hash("not a password anyone has")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


DEFAULT_POLICY = throttle.Policy(
    account=throttle.Limits(free_failures=5, lockout_failures=10, lockout=timedelta(minutes=15)),
    address=throttle.Limits(free_failures=20, lockout_failures=100, lockout=timedelta(minutes=15)),
)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in attempt: a viewer, or a refusal; `retry_at` when the attempt
    came too early and its password was not checked."""

    viewer: Viewer | None
    retry_at: datetime | None = None


class Accounts:
    def __init__(
        self,
        sessions: SessionFactory,
        *,
        session_max_age: timedelta,
        policy: throttle.Policy = DEFAULT_POLICY,
    ) -> None:
        self.sessions = sessions
        self.session_max_age = session_max_age
        self.policy = policy
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        """The time sign-in throttling and sessions go by (tests move it)."""

    # --- accounts -------------------------------------------------------------------------

    def set_password(self, login: str, password: str) -> None:
        login = login.strip().lower()
        with self.sessions.begin() as session:
            account = session.get(UserAccount, login)
            now = datetime.now(UTC)
            if account is None:
                account = UserAccount(login=login, created_at=now)
            account.password_hash = hash_password(password)
            # A new password ends every session signed in with the old one.
            account.sessions_valid_after = now
            session.add(account)
            session.exec(delete(WebSession).where(col(WebSession.login) == login))

    def ensure_accounts(self, password_hash: str, logins: list[str]) -> int:
        """Create accounts that do not exist yet with a given hash (the demo's shared password)."""
        created = 0
        with self.sessions.begin() as session:
            existing = set(session.exec(select(UserAccount.login)).all())
            for login in {x.lower() for x in logins} - existing:
                session.add(
                    UserAccount(
                        login=login, password_hash=password_hash, created_at=datetime.now(UTC)
                    )
                )
                created += 1
        return created

    def authenticate(self, login: str, password: str) -> Viewer | None:
        login = login.strip().lower()
        # A login holding what no row can (models.text) is nobody's: not looked up (PostgreSQL
        # would refuse the query), and answered like any wrong password.
        account = None
        if problem(login, multiline=False) is None:
            with self.sessions.read() as session:
                account = session.get(UserAccount, login)
        stored = account.password_hash if account and account.active else None
        valid = _hasher.verify(password, stored or _DUMMY_HASH)
        if not (valid and stored):
            return None
        viewer = self.viewer_for(login)
        if viewer is not None:
            with self.sessions.begin() as session:
                row = session.get(UserAccount, login)
                if row is not None:
                    row.last_sign_in_at = datetime.now(UTC)
                    session.add(row)
        return viewer

    def viewer_for(self, login: str) -> Viewer | None:
        """The directory's actor behind an account, or None when either is inactive."""
        if problem(login, multiline=False) is not None:
            return None  # nobody's (an OpenID provider's claim, say): never looked up
        with self.sessions.read() as session:
            account = session.get(UserAccount, login)
            if account is None or not account.active:
                return None
            try:
                actor = resolve_actor(session, login)
            except UnknownActor:
                return None
        return Viewer(actor=actor, login=login)

    # --- sign-in, throttled ------------------------------------------------------------------

    def sign_in(self, login: str, password: str, address: str | None) -> SignIn:
        """Check a password, unless the account or the address must wait (web.throttle); every
        attempt on an existing account goes into its audit, with the address."""
        login = login.strip().lower()
        now = self.clock()
        account_key = throttle.subject(Kind.ACCOUNT, login)
        address_key = throttle.subject(Kind.ADDRESS, address)
        keys = {k: v for k, v in ((Kind.ACCOUNT, account_key), (Kind.ADDRESS, address_key)) if v}
        with self.sessions.begin(immediate=True) as session:
            known = account_key is not None and session.get(UserAccount, login) is not None
            retry_at = throttle.next_attempt(session, self.policy, keys, now)
            if retry_at > now:
                # Only the first refusal since the last failure is recorded (the row counts
                # the rest): hammering a locked account must not write a row per request.
                first = (
                    throttle.count_refusal(session, Kind.ACCOUNT, account_key) == 1
                    if account_key
                    else False
                )
                if known and first:
                    self._record(session, login, "sign_in_refused", address, until=retry_at)
                return SignIn(None, retry_at)
            if account_key:
                # Counted before the password is checked (web.throttle says why).
                throttle.count_failure(session, self.policy, Kind.ACCOUNT, account_key, now)
        viewer = self.authenticate(login, password)
        with self.sessions.begin(immediate=True) as session:
            if viewer is not None:
                if account_key:
                    throttle.clear(session, Kind.ACCOUNT, account_key)
                self._record(session, login, "signed_in", address)
                return SignIn(viewer)
            throttle.forget_old(session, self.policy, now)
            if address_key:
                throttle.count_failure(session, self.policy, Kind.ADDRESS, address_key, now)
            if known and account_key:
                row = session.get(SignInThrottle, (Kind.ACCOUNT.value, account_key))
                failures = row.failures if row else 1
                self._record(session, login, "sign_in_failed", address, failures=failures)
                if failures == self.policy.account.lockout_failures:
                    until = now + self.policy.account.lockout
                    self._record(session, login, "locked_out", address, until=until)
        return SignIn(None)

    def lift_lockout(self, login: str, admin: str) -> bool:
        """An admin clears an account's failures; False when it had none to clear."""
        key = throttle.subject(Kind.ACCOUNT, login.strip().lower())
        if key is None:
            return False
        with self.sessions.begin(immediate=True) as session:
            row = session.get(SignInThrottle, (Kind.ACCOUNT.value, key))
            if row is None or session.get(UserAccount, key) is None:
                return False
            failures = row.failures
            throttle.clear(session, Kind.ACCOUNT, key)
            self._record(session, key, "lockout_lifted", None, actor=admin, failures=failures)
        return True

    def locked_accounts(self) -> dict[str, datetime]:
        with self.sessions.read() as session:
            return throttle.locked_accounts(session, self.clock())

    def events(self, login: str, limit: int = 20) -> list[AccountEvent]:
        """The account's audit, newest first."""
        with self.sessions.read() as session:
            return list(
                session.exec(
                    select(AccountEvent)
                    .where(AccountEvent.login == login)
                    .order_by(col(AccountEvent.id).desc())
                    .limit(limit)
                ).all()
            )

    def _record(
        self,
        session: Session,
        login: str,
        action: str,
        address: str | None,
        *,
        actor: str | None = None,
        **detail: Any,
    ) -> None:
        session.add(
            AccountEvent(
                login=login,
                at=self.clock(),
                action=action,
                actor=actor or login,
                address=throttle.subject(Kind.ADDRESS, address),
                detail={
                    k: v.isoformat() if isinstance(v, datetime) else v for k, v in detail.items()
                },
            )
        )

    # --- sessions -----------------------------------------------------------------------------

    def start_session(self, viewer: Viewer, address: str | None) -> str:
        """A new server-side session for the viewer; the id its cookie carries."""
        session_id = secrets.token_urlsafe(32)
        now = self.clock()
        with self.sessions.begin() as session:
            # Housekeeping: the account's sessions that ran out go now.
            session.exec(
                delete(WebSession).where(
                    col(WebSession.login) == viewer.login, col(WebSession.expires_at) <= now
                )
            )
            session.add(
                WebSession(
                    id_sha256=_digest(session_id),
                    login=viewer.login,
                    role=viewer.role,
                    created_at=now,
                    expires_at=now + self.session_max_age,
                )
            )
        return session_id

    def session_viewer(self, login: str, session_id: str) -> Viewer | None:
        """The viewer of a session cookie, while its session stands on the server: not signed
        out, not expired, the account active and its role the one it signed in with."""
        with self.sessions.read() as session:
            row = session.get(WebSession, _digest(session_id))
        if row is None or row.login != login:
            return None
        viewer = self.viewer_for(login) if row.expires_at > self.clock() else None
        if viewer is None or viewer.role != row.role:
            with self.sessions.begin() as session:
                session.exec(delete(WebSession).where(col(WebSession.id_sha256) == row.id_sha256))
            return None
        return viewer

    def end_session(self, session_id: str, address: str | None) -> None:
        with self.sessions.begin() as session:
            row = session.get(WebSession, _digest(session_id))
            if row is not None:
                session.delete(row)
                self._record(session, row.login, "signed_out", address)

    def end_all_sessions(self, login: str, address: str | None = None) -> None:
        with self.sessions.begin() as session:
            account = session.get(UserAccount, login)
            if account is not None:
                account.sessions_valid_after = datetime.now(UTC)
                session.add(account)
                session.exec(delete(WebSession).where(col(WebSession.login) == login))
                self._record(session, login, "signed_out_everywhere", address)

    # --- API tokens -----------------------------------------------------------------------

    def issue_token(self, login: str, name: str) -> str:
        """A new token for `login` called `name` (raises pydantic's ValidationError when no
        token may be called that: models.text)."""
        name = _TOKEN_NAME.validate_python(name)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.sessions.begin() as session:
            session.add(
                ApiToken(
                    login=login,
                    name=name,
                    token_sha256=_token_digest(token),
                    created_at=datetime.now(UTC),
                )
            )
        return token

    def token_viewer(self, token: str) -> Viewer | None:
        if not token.startswith(TOKEN_PREFIX):
            return None
        with self.sessions.read() as session:
            row = session.exec(
                select(ApiToken).where(ApiToken.token_sha256 == _token_digest(token))
            ).first()
        if row is None or row.revoked_at is not None:
            return None
        return self.viewer_for(row.login)

    def tokens(self, login: str) -> list[ApiToken]:
        with self.sessions.read() as session:
            return list(
                session.exec(
                    select(ApiToken)
                    .where(ApiToken.login == login)
                    .order_by(col(ApiToken.created_at).desc())
                ).all()
            )

    def revoke_token(self, login: str, token_id: int) -> bool:
        with self.sessions.begin() as session:
            row = session.get(ApiToken, token_id)
            if row is None or row.login != login or row.revoked_at is not None:
                return False
            row.revoked_at = datetime.now(UTC)
            session.add(row)
        return True


def seed_demo_accounts(sessions: SessionFactory, password: str) -> int:
    """An account with the demo password for everyone in the directory who has none yet."""
    with sessions.read() as session:
        logins = directory_logins(session)
    accounts = Accounts(sessions, session_max_age=timedelta(hours=8))
    return accounts.ensure_accounts(hash_password(password), logins)


def directory_logins(session: Session) -> list[str]:
    """Every person's and partner contact's email: who may have an account."""
    people = session.exec(select(Person.email)).all()
    contacts = session.exec(select(PartnerContact.email)).all()
    return [*people, *contacts]
