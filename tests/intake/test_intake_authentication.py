"""Mail trust fails closed: an SPF or DKIM pass counts only for the From domain it aligns with
(DMARC's rule), a result stamped by our own MTA that cannot be read is a failure, Accord can
check DKIM, SPF and DMARC itself when no MTA stands in front (against a DNS stub on loopback:
real DKIM-signed messages, keys generated here), and production refuses an intake that takes
a bare From on its word. Mail that fails is held for an admin and never answered."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from email.message import EmailMessage

import aiosmtplib
import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import update
from sqlmodel import col

from accord.platform.settings import Settings
from models.enums import InboundState
from models.tables import InboundMessage
from tests.conftest import PRODUCTION_SETTINGS, Stack, production_environment
from tests.dns_stub import DnsStub, dns_stub
from tests.intake.test_intake_faults import replies_to, row_of
from tests.intake_harness import CLAIMANT, Intake, mail
from tests.processes import run_accord

MTA = "mx.accord.localhost"
INCOMPLETE = "Respondent: Contoso\nThey took the Acme deal from us."
"""A filing that lacks most fields: a trusted sender gets an answer (ANSWERED), a held one
gets nothing (QUARANTINED)."""


@pytest.fixture
def dns() -> Iterator[DnsStub]:
    with dns_stub() as stub:
        yield stub


def trusting_the_mta(stack: Stack, *, required: bool = True) -> None:
    stack.settings.intake_authserv_id = MTA
    stack.settings.intake_require_authentication = required


def verifying_ourselves(stack: Stack, dns: DnsStub, *, required: bool = True) -> None:
    stack.settings.intake_verify = "self"
    stack.settings.intake_dns_servers = [dns.address]
    stack.settings.intake_dns_timeout_seconds = 0.5
    stack.settings.intake_require_authentication = required
    stack.settings.intake_retry_seconds = 0


# --- the MTA's word, judged by alignment -------------------------------------------------------


@pytest.mark.parametrize(
    ("results", "state", "reason"),
    [
        # A pass for someone else's domain is no pass for the From's.
        (
            "spf=pass smtp.mailfrom=bounce@bulk-mailer.example",
            InboundState.QUARANTINED,
            "spf=pass for bulk-mailer.example, not aligned with northwind.example",
        ),
        (
            "dkim=pass header.d=bulk-mailer.example",
            InboundState.QUARANTINED,
            "dkim=pass for bulk-mailer.example, not aligned with northwind.example",
        ),
        ("dkim=pass", InboundState.QUARANTINED, "dkim=pass for no domain"),
        # Relaxed alignment: the same organisational domain.
        ("dkim=pass header.d=mail.northwind.example", InboundState.ANSWERED, ""),
        ("spf=pass smtp.mailfrom=bounce@northwind.example", InboundState.ANSWERED, ""),
        ("spf=pass smtp.mailfrom=northwind.example", InboundState.ANSWERED, ""),
        # DMARC, where present, decides.
        ("dmarc=pass header.from=northwind.example", InboundState.ANSWERED, ""),
        (
            "dkim=pass header.d=northwind.example; dmarc=fail header.from=northwind.example",
            InboundState.QUARANTINED,
            "dmarc=fail",
        ),
        (
            "dmarc=pass header.from=bulk-mailer.example",
            InboundState.QUARANTINED,
            "dmarc=pass for bulk-mailer.example, not the From domain northwind.example",
        ),
    ],
)
async def test_a_pass_counts_only_when_aligned_with_the_from_domain(
    intake: Intake, results: str, state: InboundState, reason: str
) -> None:
    stack = intake.stack
    trusting_the_mta(stack)
    message = mail(
        CLAIMANT,
        "Contoso took our deal",
        INCOMPLETE,
        headers={"Authentication-Results": f"{MTA}; {results}"},
    )
    row = await intake.deliver(message)
    assert row.state is state, row.reason
    assert reason in (row.reason or ""), row.reason
    if state is InboundState.QUARANTINED:
        assert replies_to(stack, CLAIMANT) == []


@pytest.mark.parametrize("required", [True, False])
async def test_a_result_of_our_mta_that_cannot_be_read_is_a_failure(
    intake: Intake, required: bool
) -> None:
    stack = intake.stack
    trusting_the_mta(stack, required=required)
    message = mail(
        CLAIMANT,
        "Contoso took our deal",
        INCOMPLETE,
        headers={"Authentication-Results": f"{MTA}; dmarc=pass header.from=northwind.example;"},
    )
    message["Authentication-Results"] = f"{MTA}; dkim=fail this is not a result"
    row = await intake.deliver(message)
    assert row.state is InboundState.QUARANTINED, row.reason
    assert f"an Authentication-Results header of {MTA} could not be read" in (row.reason or "")
    assert replies_to(stack, CLAIMANT) == []
    # Someone else's unreadable header is not ours to read: it changes nothing.
    other = mail(
        CLAIMANT,
        "Contoso took our deal again",
        INCOMPLETE,
        headers={"Authentication-Results": f"{MTA}; dmarc=pass header.from=northwind.example"},
    )
    other["Authentication-Results"] = "relay.elsewhere.example; this is not a result"
    row = await intake.deliver(other)
    assert row.state is InboundState.ANSWERED, row.reason


# --- verifying ourselves: DKIM ----------------------------------------------------------------


def dkim_key() -> tuple[bytes, str]:
    """A fresh RSA key: the private half to sign with, the DNS record that publishes the rest."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"


def signed(
    message: EmailMessage | bytes,
    domain: str,
    private: bytes,
    selector: str = "sel",
    *,
    length: bool = False,
) -> bytes:
    raw = message if isinstance(message, bytes) else message.as_bytes()
    signature = dkim.sign(
        raw,
        selector.encode(),
        domain.encode(),
        private,
        include_headers=[b"from", b"to", b"subject", b"message-id"],
        length=length,
    )
    return signature + raw


async def send_raw(
    intake: Intake, raw: bytes, *, mail_from: str, helo: str = "mail.northwind.example"
) -> int:
    errors, answer = await aiosmtplib.send(
        raw,
        sender=mail_from,
        recipients=["disputes@accord.localhost"],
        hostname="127.0.0.1",
        port=intake.port,
        local_hostname=helo,
    )
    assert not errors and answer.startswith("2.0.0 stored as"), answer
    return int(answer.split()[3])


async def processed(intake: Intake, inbound_id: int) -> InboundMessage:
    await intake.processor.process_pending()
    return row_of(intake.stack, inbound_id)


async def test_a_valid_signature_of_the_from_domain_is_trusted(
    intake_on_both: Intake, dns: DnsStub
) -> None:
    intake = intake_on_both
    stack = intake.stack
    verifying_ourselves(stack, dns)
    private, record = dkim_key()
    dns.txt("sel._domainkey.northwind.example", record)
    dns.txt("_dmarc.northwind.example", "v=DMARC1; p=reject")
    raw = signed(mail(CLAIMANT, "Contoso took our deal", INCOMPLETE), "northwind.example", private)
    # The envelope's domain has no SPF: DKIM alone carries it.
    inbound_id = await send_raw(intake, raw, mail_from="bounce@bulk-mailer.example")
    row = await processed(intake, inbound_id)
    assert row.state is InboundState.ANSWERED, row.reason
    assert row.authentication["dkim"] == "pass"
    assert row.authentication["dkim.domain"] == "northwind.example"
    assert row.authentication["dmarc"] == "pass"
    assert row.peer_ip == "127.0.0.1" and row.helo == "mail.northwind.example"
    await stack.mail.wait_for(CLAIMANT, "Re: Contoso took our deal")


async def test_a_signature_of_another_domain_or_a_tampered_body_is_held_and_not_answered(
    intake_on_both: Intake, dns: DnsStub
) -> None:
    intake = intake_on_both
    stack = intake.stack
    verifying_ourselves(stack, dns)
    private, record = dkim_key()
    dns.txt("sel._domainkey.bulk-mailer.example", record)
    dns.txt("sel._domainkey.northwind.example", record)
    # Valid, but for bulk-mailer.example: not the From's domain.
    raw = signed(
        mail(CLAIMANT, "Contoso took our deal", INCOMPLETE), "bulk-mailer.example", private
    )
    other = await processed(intake, await send_raw(intake, raw, mail_from="b@bulk-mailer.example"))
    assert other.state is InboundState.QUARANTINED, other.reason
    assert "dkim=pass for bulk-mailer.example, not aligned with northwind.example" in (
        other.reason or ""
    )
    # Signed by the right domain, then changed on the way.
    raw = signed(mail(CLAIMANT, "Contoso took our deal", INCOMPLETE), "northwind.example", private)
    raw = raw.replace(b"Acme deal", b"Acme deal, and pay us 1,000,000 USD")
    tampered = await processed(intake, await send_raw(intake, raw, mail_from=CLAIMANT))
    assert tampered.state is InboundState.QUARANTINED, tampered.reason
    assert tampered.authentication["dkim"] == "fail"
    # Two From headers stay held, whatever the signature says.
    two = b"From: carl@contoso.example\n" + mail(CLAIMANT, "Two senders", INCOMPLETE).as_bytes()
    raw = signed(two, "northwind.example", private)
    twice = await processed(intake, await send_raw(intake, raw, mail_from=CLAIMANT))
    assert twice.state is InboundState.QUARANTINED and "more than one sender" in (
        twice.reason or ""
    )
    await asyncio.sleep(0.3)
    assert replies_to(stack, CLAIMANT) == [] and stack.mail.to(CLAIMANT) == []


@pytest.mark.parametrize("outage", ["servfail", "timeout"])
async def test_a_dns_outage_is_retried_never_trusted_never_lost(
    intake: Intake, dns: DnsStub, outage: str
) -> None:
    stack = intake.stack
    verifying_ourselves(stack, dns)
    private, record = dkim_key()
    dns.txt("sel._domainkey.northwind.example", record)
    # The domain publishes a strict policy: a check that could not be made is still no fail.
    dns.txt("_dmarc.northwind.example", "v=DMARC1; p=reject")
    key_name = "sel._domainkey.northwind.example"
    if outage == "servfail":
        dns.servfail(key_name)
    else:
        dns.silence(key_name)
    raw = signed(mail(CLAIMANT, "Contoso took our deal", INCOMPLETE), "northwind.example", private)
    inbound_id = await send_raw(intake, raw, mail_from="bounce@bulk-mailer.example")
    row = await processed(intake, inbound_id)
    assert row.state is InboundState.RECEIVED, row.reason  # to be retried
    assert row.attempts == 1
    assert "could not be checked" in (row.last_error or ""), row.last_error
    assert key_name in (row.last_error or "")
    assert replies_to(stack, CLAIMANT) == []
    # DNS answers again: the next attempt takes it in.
    dns.heal()
    with stack.sessions.begin() as session:
        session.execute(
            update(InboundMessage)
            .where(col(InboundMessage.id) == inbound_id)
            .values(claimed_until=None)
        )
    row = await processed(intake, inbound_id)
    assert row.state is InboundState.ANSWERED, row.reason
    assert row.authentication["dkim"] == "pass"


async def test_a_dns_outage_that_lasts_ends_failed_for_an_admin(
    intake: Intake, dns: DnsStub
) -> None:
    stack = intake.stack
    verifying_ourselves(stack, dns)
    stack.settings.intake_max_attempts = 2
    dns.servfail("northwind.example")
    dns.servfail("_dmarc.northwind.example")
    raw = mail(CLAIMANT, "Contoso took our deal", INCOMPLETE).as_bytes()
    inbound_id = await send_raw(intake, raw, mail_from=CLAIMANT)
    for _ in range(2):
        await processed(intake, inbound_id)
        with stack.sessions.begin() as session:
            session.execute(
                update(InboundMessage)
                .where(col(InboundMessage.id) == inbound_id)
                .where(col(InboundMessage.state) == InboundState.RECEIVED)
                .values(claimed_until=None)
            )
    row = row_of(stack, inbound_id)
    assert row.state is InboundState.FAILED, row.reason
    assert "could not be checked" in (row.reason or "")
    assert replies_to(stack, CLAIMANT) == []


# --- verifying ourselves: SPF and DMARC --------------------------------------------------------


async def test_an_spf_pass_counts_only_for_the_from_domain(intake: Intake, dns: DnsStub) -> None:
    stack = intake.stack
    verifying_ourselves(stack, dns)
    dns.txt("northwind.example", "v=spf1 ip4:127.0.0.1 -all")
    dns.txt("bulk-mailer.example", "v=spf1 ip4:127.0.0.0/8 -all")
    raw = mail(CLAIMANT, "Contoso took our deal", INCOMPLETE).as_bytes()
    aligned = await processed(intake, await send_raw(intake, raw, mail_from=CLAIMANT))
    assert aligned.state is InboundState.ANSWERED, aligned.reason
    assert aligned.authentication["spf"] == "pass"
    raw = mail(CLAIMANT, "Contoso took our deal, again", INCOMPLETE).as_bytes()
    unaligned = await processed(
        intake, await send_raw(intake, raw, mail_from="bounce@bulk-mailer.example")
    )
    assert unaligned.state is InboundState.QUARANTINED, unaligned.reason
    assert "spf=pass for bulk-mailer.example, not aligned with northwind.example" in (
        unaligned.reason or ""
    )
    # From an address SPF does not allow.
    dns.zones.records[("northwind.example", "TXT")].clear()
    dns.txt("northwind.example", "v=spf1 ip4:192.0.2.1 -all")
    raw = mail(CLAIMANT, "Contoso took our deal, a third time", INCOMPLETE).as_bytes()
    failed = await processed(intake, await send_raw(intake, raw, mail_from=CLAIMANT))
    assert failed.state is InboundState.QUARANTINED and failed.authentication["spf"] == "fail"


async def test_a_domain_without_any_record_is_not_trusted(intake: Intake, dns: DnsStub) -> None:
    stack = intake.stack
    verifying_ourselves(stack, dns)
    raw = mail(CLAIMANT, "Contoso took our deal", INCOMPLETE).as_bytes()
    row = await processed(intake, await send_raw(intake, raw, mail_from=CLAIMANT))
    assert row.state is InboundState.QUARANTINED, row.reason
    assert "not authenticated as northwind.example" in (row.reason or "")
    assert row.authentication == {
        "verified_by": "accord",
        "spf": "none",
        "spf.domain": "northwind.example",
        "dkim": "none",
        "dmarc": "none",
    }
    assert replies_to(stack, CLAIMANT) == []


async def test_a_dmarc_policy_holds_unaligned_mail_even_when_authentication_is_optional(
    intake: Intake, dns: DnsStub
) -> None:
    stack = intake.stack
    verifying_ourselves(stack, dns, required=False)
    dns.txt("_dmarc.northwind.example", "v=DMARC1; p=reject")
    dns.txt("bulk-mailer.example", "v=spf1 ip4:127.0.0.1 -all")
    raw = mail(CLAIMANT, "Contoso took our deal", INCOMPLETE).as_bytes()
    row = await processed(
        intake, await send_raw(intake, raw, mail_from="bounce@bulk-mailer.example")
    )
    assert row.state is InboundState.QUARANTINED, row.reason
    assert "dmarc=fail" in (row.reason or "")
    # Without a policy and with authentication optional, the unaligned message goes through.
    raw = mail("carl@contoso.example", "Northwind took our deal", INCOMPLETE).as_bytes()
    row = await processed(
        intake, await send_raw(intake, raw, mail_from="bounce@bulk-mailer.example")
    )
    assert row.state is InboundState.ANSWERED, row.reason


def test_alignment_uses_organisational_domains_also_under_unlisted_top_level_domains() -> None:
    from intake.authentication import aligned

    assert aligned("mail.northwind.example", "northwind.example")
    assert aligned("northwind.example", "sales.northwind.example")
    assert not aligned("bulk-mailer.example", "northwind.example")
    assert aligned("mail.contoso.co.uk", "contoso.co.uk")
    assert not aligned("evil.co.uk", "contoso.co.uk")
    assert not aligned("", "northwind.example")


# --- production refuses a bare From ------------------------------------------------------------

PRODUCTION = PRODUCTION_SETTINGS
BARE_FROM = "ACCORD_INTAKE_REQUIRE_AUTHENTICATION"


@pytest.mark.parametrize(
    ("values", "refused"),
    [
        ({}, True),
        ({"intake_authserv_id": MTA}, True),  # results read, but mail without one still acted on
        ({"intake_verify": "self"}, True),
        ({"intake_require_authentication": True, "intake_verify": "none"}, True),
        ({"intake_require_authentication": True}, True),  # no MTA named: every message held
        ({"intake_require_authentication": True, "intake_authserv_id": MTA}, False),
        ({"intake_require_authentication": True, "intake_verify": "self"}, False),
        ({"intake_trust_bare_from": True}, False),
    ],
)
def test_production_refuses_an_intake_that_trusts_a_bare_from(
    values: dict[str, object], refused: bool
) -> None:
    settings = Settings.model_validate({**PRODUCTION, **values})
    found = settings.problems(intake=True)
    assert bool(found) is refused, found
    if refused:
        [line] = found
        assert line.startswith("ACCORD_INTAKE_"), line
        assert "\n" not in line
    # The worker and the web app do not read mail: they start either way.
    assert settings.problems() == []


def test_accord_intake_stops_at_start_naming_the_settings() -> None:
    env = production_environment()
    done = run_accord("intake", env=env)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == "error: the configuration is not ready for production:"
    [problem] = lines[1:]
    for setting in (BARE_FROM, "ACCORD_INTAKE_VERIFY", "ACCORD_INTAKE_TRUST_BARE_FROM"):
        assert setting in problem


# --- the verifier on its own ------------------------------------------------------------------


def test_mail_fetched_from_a_mailbox_is_trusted_on_its_signature_alone(dns: DnsStub) -> None:
    from intake.authentication import SelfVerifier, judge

    private, record = dkim_key()
    dns.txt("sel._domainkey.northwind.example", record)
    dns.txt("northwind.example", "v=spf1 ip4:127.0.0.1 -all")
    verifier = SelfVerifier([dns.address], 0.5)
    raw = signed(mail(CLAIMANT, "Contoso took our deal", INCOMPLETE), "northwind.example", private)
    evidence = verifier.verify(raw, sender=CLAIMANT, peer_ip=None, helo=None, mail_from="")
    [spf_result] = evidence.of("spf")
    assert spf_result.result == "none" and "no SMTP session" in spf_result.note
    assert judge(evidence, CLAIMANT).trusted
    unsigned = mail(CLAIMANT, "Contoso took our deal", INCOMPLETE).as_bytes()
    evidence = verifier.verify(unsigned, sender=CLAIMANT, peer_ip=None, helo=None, mail_from="")
    assert not judge(evidence, CLAIMANT).trusted


def test_a_message_carrying_many_signatures_costs_a_few_lookups(dns: DnsStub) -> None:
    from intake.authentication import MAX_SIGNATURES, SelfVerifier, judge

    private, _ = dkim_key()
    raw = mail(CLAIMANT, "Contoso took our deal", INCOMPLETE).as_bytes()
    for n in range(40):
        raw = signed(raw, f"signer{n}.example", private)
    verifier = SelfVerifier([dns.address], 0.5)
    evidence = verifier.verify(raw, sender=CLAIMANT, peer_ip=None, helo=None, mail_from="")
    assert len(evidence.of("dkim")) == MAX_SIGNATURES
    keys = [name for name, _ in dns.zones.asked if "._domainkey." in name]
    assert len(keys) == MAX_SIGNATURES
    assert not judge(evidence, CLAIMANT).trusted


def test_a_resolver_that_is_not_an_address_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="intake_dns_servers") as refused:
        Settings(intake_dns_servers=["dns.example.com"])
    assert "'dns.example.com' is not a resolver's IP address" in str(refused.value)
    assert Settings(intake_dns_servers=["192.0.2.53:5353", "[2001:db8::53]:53"]).intake_dns_servers


def test_a_signature_over_part_of_the_body_does_not_vouch_for_what_was_appended(
    dns: DnsStub,
) -> None:
    from intake.authentication import SelfVerifier, judge

    private, record = dkim_key()
    dns.txt("sel._domainkey.northwind.example", record)
    verifier = SelfVerifier([dns.address], 0.5)
    raw = signed(
        mail(CLAIMANT, "Contoso took our deal", INCOMPLETE),
        "northwind.example",
        private,
        length=True,
    )
    evidence = verifier.verify(raw, sender=CLAIMANT, peer_ip=None, helo=None, mail_from="")
    assert judge(evidence, CLAIMANT).trusted  # l= covering the whole body is fine
    appended = raw + b"\nAlso: withdraw every other dispute of ours.\n"
    evidence = verifier.verify(appended, sender=CLAIMANT, peer_ip=None, helo=None, mail_from="")
    [signature] = evidence.of("dkim")
    assert signature.result == "neutral" and "only part of the body" in signature.note
    assert not judge(evidence, CLAIMANT).trusted
