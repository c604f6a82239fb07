"""Sign-in: local accounts with argon2 passwords, signed session cookies, personal API tokens.

An account only says who someone is; what they may do comes from the directory (their person
or partner-contact record), read afresh on every request, so deactivating someone in the
directory locks them out at once.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pwdlib import PasswordHash
from pydantic import StringConstraints, TypeAdapter
from sqlmodel import Session, col, select

from accord.access import Viewer
from accord.db import SessionFactory
from accord.directory import UnknownActor, resolve_actor
from models.tables import ApiToken, PartnerContact, Person, UserAccount
from models.text import StoredLine, problem

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


class Accounts:
    def __init__(self, sessions: SessionFactory, *, session_max_age: timedelta) -> None:
        self.sessions = sessions
        self.session_max_age = session_max_age

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

    def session_viewer(self, login: str, issued_at: float) -> Viewer | None:
        """The viewer of a signed session cookie, unless it is too old or was revoked."""
        issued = datetime.fromtimestamp(issued_at, UTC)
        if datetime.now(UTC) - issued > self.session_max_age:
            return None
        with self.sessions.read() as session:
            account = session.get(UserAccount, login)
            if account is None:
                return None
            if account.sessions_valid_after and issued < account.sessions_valid_after:
                return None
        return self.viewer_for(login)

    def end_all_sessions(self, login: str) -> None:
        with self.sessions.begin() as session:
            account = session.get(UserAccount, login)
            if account is not None:
                account.sessions_valid_after = datetime.now(UTC)
                session.add(account)

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
