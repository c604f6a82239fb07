"""Payload encryption for Temporal: every payload a client or worker hands the server (workflow
inputs, update arguments, activity inputs and results, queries' answers, memos, failures'
messages) is sealed with AES-256-GCM, so the history and the Temporal UI hold ciphertext.

A key ring holds several keys, each under an id: one is active and seals everything new, all of
them open what they sealed, so a key is rotated by adding the new one as active and keeping the
old one listed until no running dispute still carries payloads sealed with it. The payload's
metadata names the codec and the key id (never the key). A payload this codec did not seal
(histories recorded before it, or a plain JSON null) passes through as it is: those disputes
replay and continue. A payload sealed with a key not in the ring, or whose ciphertext does not
authenticate (tampered, truncated, the wrong key under a reused id), is refused with an error
saying which, never read as something else.

Model: temporalio/samples-python `encryption/codec.py`.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
"""The payload's `encoding` once sealed (the convention of Temporal's samples and UI)."""
CIPHER = b"AES-256-GCM"
CIPHER_KEY = "encryption-cipher"
KEY_ID_KEY = "encryption-key-id"
NONCE_BYTES = 12
KEY_BYTES = 32
KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""What a key id may be: it travels in every payload's metadata, in clear."""


class PayloadKeyError(ValueError):
    """The configured keys cannot be used (said without the keys' values)."""


class PayloadDecryptionError(ValueError):
    """A sealed payload that cannot be opened: unknown key id, or ciphertext that does not
    authenticate. Raised, never passed on: a workflow task failing on it retries until the key
    is configured, where reading it as plain bytes would corrupt the dispute."""


@dataclass(frozen=True)
class PayloadKeys:
    """Keys by id, and the id of the one that seals new payloads. Its repr names the ids only."""

    keys: Mapping[str, bytes] = field(repr=False)
    active: str

    def __post_init__(self) -> None:
        if self.active not in self.keys:
            raise PayloadKeyError(f"the active key id {self.active!r} is not among the keys")
        for key_id, key in self.keys.items():
            if not KEY_ID.fullmatch(key_id):
                raise PayloadKeyError(f"key id {key_id!r}: letters, digits, '.', '_', '-' only")
            if len(key) != KEY_BYTES:
                raise PayloadKeyError(f"key {key_id!r}: {len(key)} bytes, not {KEY_BYTES}")

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self.keys)

    @classmethod
    def parse(cls, text: str, active: str | None = None) -> PayloadKeys:
        """Keys written as `id:base64-of-32-bytes`, separated by commas or whitespace; the
        active one is `active`, else the first listed. Errors name the entry by its position or
        id, never by its value."""
        entries = [entry for entry in re.split(r"[\s,]+", text.strip()) if entry]
        if not entries:
            raise PayloadKeyError("no key given (expected id:base64-of-32-bytes)")
        keys: dict[str, bytes] = {}
        for position, entry in enumerate(entries, start=1):
            key_id, colon, encoded = entry.partition(":")
            if not colon or not key_id:
                raise PayloadKeyError(
                    f"entry {position}: not written as id:base64-of-32-bytes"
                    " (the id, a colon, then the key)"
                )
            if not KEY_ID.fullmatch(key_id):
                raise PayloadKeyError(
                    f"entry {position}: the key id holds other characters than letters, digits,"
                    " '.', '_' and '-' (or is longer than 64)"
                )
            if key_id in keys:
                raise PayloadKeyError(f"key id {key_id!r} is listed twice")
            keys[key_id] = _decode_key(key_id, encoded)
        chosen = active.strip() if active and active.strip() else next(iter(keys))
        if chosen not in keys:
            raise PayloadKeyError(
                f"the active key id {chosen!r} is not among the keys listed ({', '.join(keys)})"
            )
        return cls(keys=keys, active=chosen)


def _decode_key(key_id: str, encoded: str) -> bytes:
    # Standard or URL-safe base64, with or without padding.
    normalised = encoded.replace("-", "+").replace("_", "/")
    normalised += "=" * (-len(normalised) % 4)
    try:
        key = base64.b64decode(normalised, validate=True)
    except (binascii.Error, ValueError):
        raise PayloadKeyError(f"key {key_id!r}: not base64") from None
    if len(key) != KEY_BYTES:
        raise PayloadKeyError(
            f"key {key_id!r}: {len(key)} bytes once decoded; AES-256 needs {KEY_BYTES}"
        )
    return key


def new_key_entry(key_id: str) -> str:
    """A fresh random key, written as the settings take it."""
    if not KEY_ID.fullmatch(key_id):
        raise PayloadKeyError(f"key id {key_id!r}: letters, digits, '.', '_', '-' only")
    return f"{key_id}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"


class EncryptionCodec(PayloadCodec):
    """Seals each payload whole (its metadata and data, serialised) under the active key."""

    def __init__(self, keys: PayloadKeys) -> None:
        self._active = keys.active
        self._active_id = keys.active.encode()
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.keys.items()}

    def __repr__(self) -> str:
        return f"EncryptionCodec(active={self._active!r}, keys={sorted(self._ciphers)!r})"

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.seal(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.open(p) for p in payloads]

    def seal(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        # The key id is authenticated with the data: metadata moved onto another key id fails.
        sealed = self._ciphers[self._active].encrypt(
            nonce, payload.SerializeToString(), self._active_id
        )
        return Payload(
            metadata={"encoding": ENCODING, CIPHER_KEY: CIPHER, KEY_ID_KEY: self._active_id},
            data=nonce + sealed,
        )

    def open(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # not sealed by this codec: recorded before it, passed through
        cipher_name = payload.metadata.get(CIPHER_KEY, CIPHER)
        if cipher_name != CIPHER:
            raise PayloadDecryptionError(
                f"payload sealed with {cipher_name.decode(errors='replace')!r}; this codec"
                f" opens {CIPHER.decode()} only"
            )
        raw_id = payload.metadata.get(KEY_ID_KEY)
        if raw_id is None:
            raise PayloadDecryptionError("sealed payload without a key id in its metadata")
        key_id = raw_id.decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadDecryptionError(
                f"payload sealed with key id {key_id!r}, which is not among the configured"
                f" payload keys ({', '.join(sorted(self._ciphers))}): add that key to"
                " ACCORD_PAYLOAD_KEYS"
            )
        if len(payload.data) < NONCE_BYTES + 16:
            raise PayloadDecryptionError(
                f"payload sealed with key id {key_id!r} is too short to be a sealed payload"
            )
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, raw_id)
        except InvalidTag:
            raise PayloadDecryptionError(
                f"payload sealed with key id {key_id!r} does not authenticate: its ciphertext"
                " or metadata was altered, or the key under that id is not the one that sealed"
                " it"
            ) from None
        opened = Payload()
        try:
            opened.ParseFromString(plain)
        except DecodeError:
            raise PayloadDecryptionError(
                f"payload sealed with key id {key_id!r} opens to something not a payload"
            ) from None
        return opened
