"""The payload codec (issue 15, item 2): AES-256-GCM under a key ring, the key id in the
payload's metadata, rotation, payloads recorded before it passed through, and refusals that say
why. Settings: keys required outside development, never shown."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from accord.application import build_filing
from accord.platform.settings import DEVELOPMENT_PAYLOAD_KEYS, ConfigurationError, Settings
from accord.platform.temporal import data_converter_for
from accord.runtime.wiring import build_worker
from models import search_attributes
from models.codec import (
    CIPHER_KEY,
    ENCODING,
    KEY_ID_KEY,
    EncryptionCodec,
    PayloadDecryptionError,
    PayloadKeyError,
    PayloadKeys,
    new_key_entry,
)
from models.converter import data_converter, encrypted
from models.enums import DisputeStage, NoteVisibility
from models.payloads import AddNote, DeclareImpasse
from tests.conftest import (
    CONVERTER,
    DEV_SERVER,
    PRODUCTION_SETTINGS,
    MailCapture,
    Stack,
    make_settings,
    seed,
)
from tests.history_splits import dispute_replayer
from tests.processes import deployed_environment, run_accord
from tests.workflows.test_dispute_paths import in_mediation
from workflows.dispute import DisputeWorkflow

KEY_A = bytes(range(32))
KEY_B = bytes(range(32, 64))
A = PayloadKeys(keys={"key-a": KEY_A}, active="key-a")
A_AND_B = PayloadKeys(keys={"key-a": KEY_A, "key-b": KEY_B}, active="key-b")
SECRET = b'{"reasons":"Nora Quinn told the mediator in caucus that she would take 70/30."}'


def plain(data: bytes = SECRET) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=data)


def entry(key_id: str, key: bytes) -> str:
    return f"{key_id}:{base64.b64encode(key).decode()}"


async def test_a_sealed_payload_names_the_codec_and_key_and_holds_no_clear_text() -> None:
    codec = EncryptionCodec(A)
    [sealed] = await codec.encode([plain()])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[CIPHER_KEY] == b"AES-256-GCM"
    assert sealed.metadata[KEY_ID_KEY] == b"key-a"
    serialised = sealed.SerializeToString()
    assert b"Nora" not in serialised and b"json/plain" not in serialised
    assert KEY_A not in serialised
    [again] = await codec.encode([plain()])
    assert again.data != sealed.data  # a fresh nonce each time
    assert await codec.decode([sealed, again]) == [plain(), plain()]


async def test_a_payload_recorded_before_the_codec_passes_through() -> None:
    codec = EncryptionCodec(A)
    old = [plain(), Payload(metadata={"encoding": b"binary/null"}), Payload()]
    assert await codec.decode(old) == old


async def test_an_unknown_key_id_is_refused_naming_it() -> None:
    [sealed] = await EncryptionCodec(A).encode([plain()])
    other = PayloadKeys(keys={"key-b": KEY_B}, active="key-b")
    with pytest.raises(PayloadDecryptionError, match=r"key id 'key-a', which is not among"):
        await EncryptionCodec(other).decode([sealed])
    # Through the whole converter, as a client or worker reads a history: refused, not passed.
    values = await encrypted(A).encode([{"reasons": "sealed"}])
    with pytest.raises(PayloadDecryptionError, match="key-a"):
        await encrypted(other).decode(values)


@pytest.mark.parametrize("where", ["ciphertext", "nonce", "tag", "key id", "truncated"])
async def test_tampered_payloads_are_refused(where: str) -> None:
    codec = EncryptionCodec(A_AND_B)
    [sealed] = await codec.encode([plain()])
    data = bytearray(sealed.data)
    metadata = dict(sealed.metadata)
    if where == "ciphertext":
        data[20] ^= 1
    elif where == "nonce":
        data[0] ^= 1
    elif where == "tag":
        data[-1] ^= 1
    elif where == "key id":
        metadata[KEY_ID_KEY] = b"key-a"  # known, but not the key that sealed it
    else:
        data = data[:20]
    forged = Payload(metadata=metadata, data=bytes(data))
    with pytest.raises(PayloadDecryptionError, match=r"does not authenticate|too short"):
        await codec.decode([forged])


async def test_after_a_rotation_old_payloads_open_and_new_ones_use_the_new_key() -> None:
    [old] = await EncryptionCodec(A).encode([plain()])
    rotated = EncryptionCodec(A_AND_B)
    [new] = await rotated.encode([plain(b'{"x":1}')])
    assert old.metadata[KEY_ID_KEY] == b"key-a" and new.metadata[KEY_ID_KEY] == b"key-b"
    assert await rotated.decode([old, new]) == [plain(), plain(b'{"x":1}')]
    # The settings' way of saying it: both listed, the new one active.
    settings = Settings(
        payload_keys=f"{entry('key-a', KEY_A)}, {entry('key-b', KEY_B)}",
        payload_key_id="key-b",
    )
    assert settings.payload_key_ring() == A_AND_B
    converter = data_converter_for(settings)
    [value] = await converter.encode([{"n": 1}])
    assert value.metadata[KEY_ID_KEY] == b"key-b"
    assert await converter.decode([value]) == [{"n": 1}]


async def test_failure_messages_are_sealed_too() -> None:
    """An update refused inside its handler, an activity's error: their message can quote what
    a person wrote, and is stored in the history with the failure."""
    converter = encrypted(A)
    failure = Failure()
    await converter.encode_failure(
        ApplicationError("Nora Quinn's caucus note was refused"), failure
    )
    assert b"Nora" not in failure.SerializeToString()
    decoded = await converter.decode_failure(failure)
    assert str(decoded) == "Nora Quinn's caucus note was refused"


@pytest.mark.parametrize(
    ("text", "active", "expected"),
    [
        ("", None, "no key given"),
        ("just-a-key", None, "entry 1: not written as id:base64"),
        (f"bad#id:{base64.b64encode(KEY_A).decode()}", None, "entry 1: the key id"),
        ("k1:not*base64", None, "key 'k1': not base64"),
        (f"k1:{base64.b64encode(KEY_A[:16]).decode()}", None, "16 bytes once decoded"),
        (
            f"k1:{base64.b64encode(KEY_A).decode()},k1:{base64.b64encode(KEY_B).decode()}",
            None,
            "'k1' is listed twice",
        ),
        (f"k1:{base64.b64encode(KEY_A).decode()}", "k2", "active key id 'k2' is not among"),
    ],
)
def test_a_malformed_key_list_is_refused_without_showing_a_key(
    text: str, active: str | None, expected: str
) -> None:
    with pytest.raises(PayloadKeyError, match=expected) as refused:
        PayloadKeys.parse(text, active)
    for key in (KEY_A, KEY_B):
        assert base64.b64encode(key).decode() not in str(refused.value)
    assert "*" not in str(refused.value)


def test_keys_are_read_in_either_base64_alphabet_and_the_first_is_active_by_default() -> None:
    key = bytes([0xFB, 0xFF] * 16)  # '+' and '/' in standard base64, '-' and '_' URL-safe
    standard = base64.b64encode(key).decode()
    urlsafe = base64.urlsafe_b64encode(key).decode().rstrip("=")
    ring = PayloadKeys.parse(f"one:{standard}\n two:{urlsafe}")
    assert ring.active == "one" and ring.keys == {"one": key, "two": key}
    made = PayloadKeys.parse(new_key_entry("2027-01"))
    assert made.active == "2027-01" and len(made.keys["2027-01"]) == 32


def test_keys_never_show_in_repr_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    text = entry("key-a", KEY_A)
    settings = Settings(payload_keys=text)
    ring = settings.payload_key_ring()
    codec = EncryptionCodec(ring)
    logging.getLogger("accord.test").warning("settings %r ring %r codec %r", settings, ring, codec)
    shown = " ".join([repr(settings), str(settings), repr(ring), repr(codec), caplog.text])
    assert base64.b64encode(KEY_A).decode() not in shown and repr(KEY_A) not in shown
    assert "key-a" in repr(codec)  # the ids are no secret: they travel in every payload


def production(**extra: str) -> Settings:
    values = {k: v for k, v in PRODUCTION_SETTINGS.items() if k != "payload_keys"}
    return Settings.model_validate({**values, **extra})


def test_production_refuses_to_start_without_a_real_payload_key() -> None:
    (missing,) = production().problems()
    assert (
        missing.startswith("ACCORD_PAYLOAD_KEYS: not set") and "accord payload-key new" in missing
    )
    with pytest.raises(ConfigurationError):
        production().payload_key_ring()
    (placeholder,) = production(payload_keys="change-me").problems()
    assert placeholder.startswith("ACCORD_PAYLOAD_KEYS: still the placeholder")
    dev_key = base64.b64encode(DEVELOPMENT_PAYLOAD_KEYS.keys["development"]).decode()
    (public,) = production(payload_keys=f"old:{dev_key}").problems()
    assert "development key" in public and dev_key not in public
    half = base64.b64encode(KEY_A[:31]).decode()
    (malformed,) = production(payload_keys=f"k1:{half}").problems()
    assert malformed == "ACCORD_PAYLOAD_KEYS: key 'k1': 31 bytes once decoded; AES-256 needs 32"
    assert half not in malformed
    assert production(payload_keys=entry("k1", KEY_A)).problems() == []


def test_development_seals_with_the_development_key_and_refuses_an_unreadable_list() -> None:
    assert Settings().payload_key_ring() == DEVELOPMENT_PAYLOAD_KEYS
    assert Settings().problems() == []
    with pytest.raises(ConfigurationError, match="ACCORD_PAYLOAD_KEYS: entry 1"):
        Settings(payload_keys="garbage").check()


async def test_a_dispute_begun_before_the_codec_continues_and_replays_with_it(
    sqlite_url: str, smtp: tuple[MailCapture, int], tmp_path: Path
) -> None:
    """Deployed over running disputes: a dispute filed and mediated by a worker without the
    codec continues on a worker with it (its old payloads read as they are, its new ones
    sealed), and its whole history replays on the new code."""
    mail, port = smtp
    # A real dev server: the time-skipping one never hands a workflow cached by a stopped
    # worker (its sticky queue) to another one.
    async with await WorkflowEnvironment.start_local(
        dev_server_existing_path=DEV_SERVER,
        data_converter=data_converter,
        dev_server_extra_args=["--log-level", "error", *search_attributes.DEV_SERVER_FLAGS],
    ) as env:
        before = Stack(env, make_settings(sqlite_url, port, tmp_path), mail)
        seed(before.sessions)
        async with before.worker:
            number = (await before.file()).number
            mediator = await in_mediation(before, number)
        sealed_client = Client(
            env.client.service_client, namespace=env.client.namespace, data_converter=CONVERTER
        )
        after = before
        after.client = sealed_client
        after.filing = build_filing(after.services, sealed_client)
        after.worker = build_worker(
            sealed_client, after.services, after.settings.task_queue, fail_workflows_on_bugs=True
        )
        async with after.worker:
            handle = after.handle(number)
            await handle.execute_update(
                DisputeWorkflow.add_note,
                AddNote(
                    actor=after.actor(mediator),
                    text="CAUCUS-after-the-codec: a note sealed from here on.",
                    visibility=NoteVisibility.CAUCUS,
                    caucus_partner_id="contoso",
                ),
            )
            await handle.execute_update(
                DisputeWorkflow.declare_impasse,
                DeclareImpasse(actor=after.actor(mediator), reason="Neither side will move."),
            )
            state = await after.wait_for(number, lambda s: s.stage is DisputeStage.FORMAL_REVIEW)
            assert [n.text for n in state.notes] == [
                "CAUCUS-after-the-codec: a note sealed from here on."
            ]
            history = await handle.fetch_history()
    raw = b"".join(e.SerializeToString() for e in history.events)
    assert b"nora@northwind.example" in raw  # the filing, recorded before the codec
    assert b"CAUCUS-after-the-codec" not in raw and ENCODING in raw
    replayed = await dispute_replayer(CONVERTER).replay_workflow(
        history, raise_on_replay_failure=False
    )
    assert replayed.replay_failure is None


def test_accord_payload_key_makes_a_key_and_lists_ids_never_keys() -> None:
    made = run_accord("payload-key", "new", "--id", "2027-q1", env=deployed_environment())
    assert made.returncode == 0, made.stderr
    entry_made = made.stdout.strip()
    assert PayloadKeys.parse(entry_made).active == "2027-q1"
    keys = f"{entry_made},{entry('key-a', KEY_A)}"
    listed = run_accord("payload-key", "ids", env=deployed_environment(ACCORD_PAYLOAD_KEYS=keys))
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == ["2027-q1  (active: seals new payloads)", "key-a"]
    broken = run_accord(
        "payload-key", "ids", env=deployed_environment(ACCORD_PAYLOAD_KEYS="k1:c2hvcnQ=")
    )
    assert broken.returncode == 2
    assert "key 'k1': 5 bytes once decoded" in broken.stderr and "c2hvcnQ" not in broken.stderr


def test_an_unreadable_key_list_stops_every_process_even_in_development() -> None:
    for command in ("worker", "web", "intake"):
        done = run_accord(command, env=deployed_environment(ACCORD_PAYLOAD_KEYS="k1:c2hvcnQ="))
        assert done.returncode == 2, done.stderr
        assert done.stderr.splitlines() == [
            "error: the configuration is not usable:",
            "  - ACCORD_PAYLOAD_KEYS: key 'k1': 5 bytes once decoded; AES-256 needs 32",
        ]


async def test_a_process_without_the_key_is_refused_not_fed_ciphertext(stack: Stack) -> None:
    """A client configured with other keys (a web process not yet given the new key list, say)
    reading a dispute: refused, naming the key id it lacks, instead of showing ciphertext or
    reading it as some other value."""
    number = (await stack.file()).number
    await stack.wait_for(number, lambda s: s.candidate_mediator_id is not None)
    stranger = Client(
        stack.client.service_client, namespace=stack.client.namespace, data_converter=encrypted(A)
    )
    handle = stranger.get_workflow_handle_for(DisputeWorkflow.run, number)
    with pytest.raises(PayloadDecryptionError, match="key id 'development', which is not among"):
        await handle.query(DisputeWorkflow.get_state)


def test_a_copied_env_example_still_runs_in_development_on_the_development_key() -> None:
    copied = Settings(payload_keys="change-me")
    assert copied.problems() == [] and copied.payload_key_ring() == DEVELOPMENT_PAYLOAD_KEYS
