"""Whether a message comes from the domain its From names: the receiving MTA's word (its
Authentication-Results) or Accord's own checks (DKIM with dkimpy, SPF with pyspf, DMARC's
policy over DNS), judged by DMARC's rule that an SPF or DKIM pass counts only for a domain
aligned with the From domain.

Fails closed: a result of our MTA that cannot be read is a failure, a check DNS could not
answer is retried and never trusted, and a pass for another domain is no pass."""

from __future__ import annotations

import contextvars
import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.resources import as_file, files
from typing import Any

import authres  # type: ignore[import-untyped]
import dkim  # type: ignore[import-untyped]
import dns.exception
import dns.nameserver
import dns.resolver
import idna
import spf  # type: ignore[import-untyped]
from authheaders.dmarc_lookup import DMARCException, answer_to_dict  # type: ignore[import-untyped]
from publicsuffix2 import PublicSuffixList  # type: ignore[import-untyped]

from accord.platform.settings import resolver_address

PASS = "pass"  # noqa: S105 - the result keyword, not a secret
SELF = "accord"
"""How results of our own checks are labelled (where an MTA's would carry its authserv-id)."""
MAX_SIGNATURES = 5
"""DKIM signatures checked per message: each costs a DNS question, and a message may carry any
number of them."""
SPF_SECONDS = 20.0
"""The whole SPF evaluation's budget (RFC 7208 4.6.4 recommends at least 20 s)."""


class SenderUnverifiable(Exception):
    """Our own checks could not be made (DNS did not answer): the message is retried later,
    and not trusted meanwhile."""


class _DnsUnavailable(Exception):
    """A question DNS did not answer (timeout, SERVFAIL): not the same as "no such record"."""


# --- alignment ----------------------------------------------------------------------------


@functools.cache
def _suffixes() -> PublicSuffixList:
    # The list authheaders ships (newer than publicsuffix2's own): the one its DMARC uses.
    with as_file(files("authheaders") / "public_suffix_list.txt") as path, open(path) as lines:
        return PublicSuffixList(lines)


def organisational_domain(domain: str) -> str:
    """The registered domain (RFC 7489 3.2): the public suffix and one label more. A domain
    under a suffix the list does not know takes the default rule, its last label (publicsuffix2
    would answer the bare TLD, and so align every domain under it with every other)."""
    labels = domain.lower().strip(".").split(".")
    suffix = _suffixes().get_tld(domain.lower().strip("."), wildcard=True, strict=True)
    size = suffix.count(".") + 1 if suffix else 1
    return ".".join(labels[-(size + 1) :])


def _ascii(domain: str) -> str:
    """A domain in its ASCII form (IDNA A-labels, UTS 46 mapping), as DKIM's d= and SMTP name
    it: a From of an internationalised address names it in Unicode. A name IDNA refuses is kept
    as it is (lower case), so it aligns with nothing but itself."""
    domain = domain.strip().strip(".")
    try:
        return idna.encode(domain, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError, ValueError):
        return domain.lower()


def aligned(domain: str, from_domain: str, *, strict: bool = False) -> bool:
    """DMARC identifier alignment: the same domain (strict), or the same organisational domain
    (relaxed, DMARC's default); compared in their ASCII forms."""
    domain, from_domain = _ascii(domain), _ascii(from_domain)
    if not domain or not from_domain:
        return False
    if strict:
        return domain == from_domain
    return organisational_domain(domain) == organisational_domain(from_domain)


# --- results and their judgement ----------------------------------------------------------


@dataclass(frozen=True)
class Result:
    method: str
    """spf, dkim or dmarc (an MTA may stamp others, which are recorded and not judged)."""
    result: str
    """pass, fail, softfail, neutral, none, temperror, permerror, ..."""
    domain: str = ""
    """What the result is for: the envelope's domain (SPF), d= (DKIM), the From's (DMARC)."""
    note: str = ""
    """What an admin needs to know beside the result (the name DNS did not answer for)."""

    def describe(self) -> str:
        return f"{self.method}={self.result}" + (f" for {self.domain}" if self.domain else "")


@dataclass(frozen=True)
class Evidence:
    by: str
    """The MTA's authserv-id, or SELF."""
    results: tuple[Result, ...] = ()
    unreadable: str | None = None
    """Why a header of our MTA could not be read: a failure, never ignored."""

    def of(self, method: str) -> list[Result]:
        return [r for r in self.results if r.method == method]

    def record(self, from_domain: str) -> dict[str, str]:
        """What is kept on the message for the admins: one result per method (a pass aligned
        with the From domain when there is one) and the domain it is for."""
        if not self.results and self.unreadable is None:
            return {}
        kept: dict[str, str] = {"verified_by": self.by}
        if self.unreadable is not None:
            kept["unreadable"] = "yes"
        for method in dict.fromkeys(r.method for r in self.results):
            found = self.of(method)
            best = next(
                (r for r in found if r.result == PASS and aligned(r.domain, from_domain)),
                found[0],
            )
            kept[method] = best.result
            if best.domain and method in ("spf", "dkim"):
                kept[f"{method}.domain"] = best.domain
        return kept


@dataclass(frozen=True)
class Verdict:
    trusted: bool
    """A DMARC pass for the From domain, or an SPF or DKIM pass aligned with it."""
    failure: str | None = None
    """Why the message is held whatever the settings: it failed, or our MTA's word on it
    cannot be read."""
    unavailable: str | None = None
    """A check that could not be made (DNS), when nothing else decided."""
    doubt: str = ""
    """Why it is not trusted, in words, when it is not."""


def judge(evidence: Evidence, sender: str) -> Verdict:
    """DMARC, where present, decides; without it an SPF or DKIM pass aligned with the From
    domain is trusted; a pass for any other domain is not."""
    domain = sender.rpartition("@")[2].lower().strip(".")
    if evidence.unreadable is not None:
        return Verdict(False, failure=evidence.unreadable)
    spf_dkim = [*evidence.of("spf"), *evidence.of("dkim")]
    passes = [r for r in spf_dkim if r.result == PASS]
    unaligned = [
        f"{r.method}=pass for {r.domain}, not aligned with {domain}"
        if r.domain
        else f"{r.method}=pass for no domain"
        for r in passes
        if not aligned(r.domain, domain)
    ]
    failed = [r for r in evidence.of("dmarc") if r.result in ("fail", "permerror")]
    if failed:
        # What failed, and what passed for whom: the admin sees why DMARC said no.
        said = ", ".join(r.describe() + (f" ({r.note})" if r.note else "") for r in failed)
        return Verdict(False, failure="; ".join([said, *unaligned]))
    doubts: list[str] = []
    for result in evidence.of("dmarc"):
        if result.result != PASS:
            continue
        if not result.domain or result.domain == domain:
            return Verdict(True)
        doubts.append(f"dmarc=pass for {result.domain}, not the From domain {domain}")
    if len(unaligned) < len(passes):
        return Verdict(True)
    doubts += unaligned
    failures = {r.method for r in spf_dkim if r.result in ("fail", "permerror")}
    if failures == {"spf", "dkim"} and not passes:
        return Verdict(
            False,
            failure=", ".join(r.describe() for r in spf_dkim if r.result in ("fail", "permerror")),
        )
    unavailable = [r for r in spf_dkim if r.result == "temperror"] or [
        r for r in evidence.of("dmarc") if r.result == "temperror"
    ]
    doubts += [r.describe() for r in spf_dkim if r.result not in (PASS, "none", "temperror")]
    why = "; ".join(doubts) or "no SPF or DKIM pass aligned with it and no DMARC pass"
    return Verdict(
        False,
        unavailable="; ".join(f"{r.method}: {r.note or 'no answer'}" for r in unavailable) or None,
        doubt=f"not authenticated as {domain or 'the From domain'}: {why}",
    )


# --- the MTA's word -------------------------------------------------------------------------

_COMMENT = re.compile(r"\([^()]*\)")


def _stamped_by(value: str) -> str:
    """The authserv-id a header names, read as text: also from a header the parser refuses."""
    text = value
    for _ in range(5):  # nested comments, a few levels deep
        text = _COMMENT.sub(" ", text)
    words = text.split(";", 1)[0].split()
    return words[0].lower() if words else ""


def _property(result: Any, ptype: str, name: str) -> str:
    for prop in getattr(result, "properties", []) or []:
        if str(prop.type).lower() == ptype and str(prop.name).lower() == name:
            return str(prop.value)
    return ""


def _domain(value: str) -> str:
    return value.rpartition("@")[2].lower().strip(".<>")


def _result_of(result: Any) -> Result:
    method = str(result.method).lower()
    if method == "spf":
        domain = _property(result, "smtp", "mailfrom") or _property(result, "smtp", "helo")
    elif method == "dkim":
        domain = _property(result, "header", "d") or _property(result, "header", "i")
    elif method == "dmarc":
        domain = _property(result, "header", "from")
    else:
        domain = ""
    return Result(method, str(result.result).lower(), _domain(domain))


def from_mta(headers: Iterable[str], authserv_id: str) -> Evidence:
    """The results our MTA stamped (only headers naming its authserv-id); one of them that
    cannot be read makes the evidence unreadable."""
    ours = authserv_id.lower()
    results: list[Result] = []
    for value in headers:
        if _stamped_by(value) != ours:
            continue  # another server's word (or the sender's): not ours to trust
        try:
            parsed = authres.AuthenticationResultsHeader.parse_value(value)
            if str(parsed.authserv_id).lower() != ours:
                raise ValueError("authserv-id")
        except Exception:  # the parser's text is its own: the admin reads the header
            shown = " ".join(value.split())
            shown = shown if len(shown) <= 200 else shown[:200] + "…"
            return Evidence(
                authserv_id,
                tuple(results),
                unreadable=(
                    f"an Authentication-Results header of {authserv_id} could not be read"
                    f" ({shown!r}): held, as what it says may be a failure"
                ),
            )
        results += [_result_of(r) for r in parsed.results]
    return Evidence(authserv_id, tuple(results))


# --- our own checks -----------------------------------------------------------------------

_TEMPORARY = (
    dns.exception.Timeout,
    dns.resolver.NoNameservers,
    dns.resolver.NoResolverConfiguration,
)
"""DNS did not answer, or answered SERVFAIL: the record may well exist."""


_RESOLVER: contextvars.ContextVar[dns.resolver.Resolver | None] = contextvars.ContextVar(
    "accord_spf_resolver", default=None
)
_library_lookup = spf.DNSLookup


def _spf_lookup(name: str, qtype: str, strict: Any = True, timeout: float = 30) -> list[Any]:
    """pyspf's DNS, through the resolver of the check under way (pyspf's one hook for its DNS
    is this module function, which its own tests replace the same way); outside our checks,
    pyspf's own lookup as before."""
    resolver = _RESOLVER.get()
    if resolver is None:
        return list(_library_lookup(name, qtype, strict, timeout))
    try:
        answer = resolver.resolve(name, qtype, lifetime=timeout, raise_on_no_answer=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.YXDOMAIN):
        return []
    except _TEMPORARY as exc:
        raise spf.TempError(f"DNS {name} {qtype}: {_why(exc)}") from None
    except dns.exception.DNSException:  # a name DNS cannot hold (a label too long)
        return []
    found: list[Any] = []
    for rdata in answer.rrset or ():
        if qtype in ("A", "AAAA"):
            found.append(((name, qtype), rdata.address))
        elif qtype == "MX":
            found.append(((name, qtype), (rdata.preference, rdata.exchange)))
        elif qtype == "PTR":
            found.append(((name, qtype), rdata.target.to_text(True)))
        elif qtype in ("TXT", "SPF"):
            found.append(((name, qtype), rdata.strings))
    return found


spf.DNSLookup = _spf_lookup


def _why(exc: BaseException) -> str:
    if isinstance(exc, dns.exception.Timeout):
        return "no answer in time"
    if isinstance(exc, dns.resolver.NoNameservers):
        return "the servers failed to answer (SERVFAIL or refused)"
    return "no resolver configured"


def _covers_body(checker: Any) -> bool:
    """Whether the signature just verified signs the whole body (no l=, or l= its length)."""
    fields = checker.signature_fields
    if b"l" not in fields:
        return True
    policy = dkim.CanonicalizationPolicy.from_c_value(fields.get(b"c", b"simple/simple"))
    return int(fields[b"l"]) >= len(policy.canonicalize_body(checker.body))


class SelfVerifier:
    """DKIM, SPF and DMARC checked here, over the resolvers given (the system's by default)."""

    def __init__(self, servers: list[str], timeout: float) -> None:
        self.servers = servers
        self.timeout = timeout

    def _resolver(self) -> dns.resolver.Resolver:
        try:
            resolver = dns.resolver.Resolver(configure=not self.servers)
        except _TEMPORARY as exc:
            raise SenderUnverifiable(f"the sender could not be checked: {_why(exc)}") from None
        if self.servers:
            resolver.nameservers = [
                dns.nameserver.Do53Nameserver(*address)
                for address in map(resolver_address, self.servers)
                if address is not None  # checked by the settings
            ]
        resolver.lifetime = resolver.timeout = self.timeout
        return resolver

    def verify(
        self, raw: bytes, *, sender: str, peer_ip: str | None, helo: str | None, mail_from: str
    ) -> Evidence:
        resolver = self._resolver()
        domain = _domain(sender) if "@" in sender else ""
        spf_result = self._spf(resolver, peer_ip, helo, mail_from)
        signatures = self._dkim(resolver, raw)
        dmarc = self._dmarc(resolver, domain, [spf_result, *signatures])
        return Evidence(SELF, (spf_result, *signatures, dmarc))

    # DNS questions of DKIM and DMARC, telling "no record" from "no answer".
    def _txt(self, resolver: dns.resolver.Resolver, name: str) -> list[bytes]:
        try:
            answer = resolver.resolve(name, "TXT", raise_on_no_answer=False, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.YXDOMAIN):
            return []
        except _TEMPORARY as exc:
            raise _DnsUnavailable(f"DNS did not answer for {name}: {_why(exc)}") from None
        except dns.exception.DNSException:  # not a name DNS can hold: no record there
            return []
        return [b"".join(r.strings) for r in answer.rrset or ()]

    def _dkim(self, resolver: dns.resolver.Resolver, raw: bytes) -> list[Result]:
        def key(name: bytes, timeout: float = 5) -> bytes | None:
            try:
                text = name.decode("ascii")
            except UnicodeDecodeError:
                return None
            found = self._txt(resolver, text)
            return found[0] if found else None

        try:
            checker = dkim.DKIM(raw, timeout=self.timeout)
            count = sum(1 for name, _ in checker.headers if name.lower() == b"dkim-signature")
        except Exception:  # headers dkimpy cannot split: no signature can be checked
            return [Result("dkim", "permerror", note="the message's headers could not be read")]
        if not count:
            return [Result("dkim", "none")]
        results: list[Result] = []
        for index in range(min(count, MAX_SIGNATURES)):
            checker.signature_fields = {}
            try:
                outcome, note = ("pass" if checker.verify(index, dnsfunc=key) else "fail"), ""
                if outcome == PASS and not _covers_body(checker):
                    # l= signs a prefix: anything appended later passes with it (RFC 6376 8.2).
                    outcome, note = "neutral", "the signature covers only part of the body"
            except _DnsUnavailable as exc:
                outcome, note = "temperror", str(exc)
            except dkim.DKIMException as exc:
                outcome, note = "fail", type(exc).__name__
            except Exception as exc:  # a signature dkimpy cannot even read
                outcome, note = "permerror", type(exc).__name__
            signer = checker.signature_fields.get(b"d", b"")
            results.append(
                Result("dkim", outcome, signer.decode("ascii", "replace").lower(), note=note)
            )
        return results

    def _spf(
        self,
        resolver: dns.resolver.Resolver,
        peer_ip: str | None,
        helo: str | None,
        mail_from: str,
    ) -> Result:
        envelope = mail_from.strip().strip("<>")
        # The domain pyspf will check, found by pyspf's own rule: an envelope without a local
        # part (MAIL FROM:<attacker.example>) is checked as that domain, not as the HELO name,
        # which the sender picks freely and must not be credited with the pass.
        domain = spf.split_email(envelope, helo or "")[1].lower().strip(".")
        if not peer_ip:
            return Result(
                "spf", "none", domain, note="no SMTP session: fetched from a mailbox, not received"
            )
        token = _RESOLVER.set(resolver)
        try:
            address = ipaddress.ip_address(peer_ip)
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
                address = address.ipv4_mapped
            result, _, _ = spf.query(
                i=str(address),
                s=envelope,
                h=helo or "",
                timeout=self.timeout,
                querytime=SPF_SECONDS,
            ).check()
        except Exception as exc:  # an input pyspf refuses (an envelope it cannot read)
            return Result("spf", "permerror", domain, note=type(exc).__name__)
        finally:
            _RESOLVER.reset(token)
        note = f"DNS did not answer for the SPF record of {domain}" if result == "temperror" else ""
        return Result("spf", str(result), domain, note=note)

    def _dmarc(self, resolver: dns.resolver.Resolver, domain: str, results: list[Result]) -> Result:
        if not domain:
            return Result("dmarc", "permerror", note="no From domain")
        try:
            record = self._policy(resolver, domain)
        except _DnsUnavailable as exc:
            return Result("dmarc", "temperror", domain, note=str(exc))
        except DMARCException:
            return Result("dmarc", "permerror", domain, note="its DMARC record cannot be read")
        if record is None:
            return Result("dmarc", "none", domain)
        strict = {"spf": record.get("aspf") == "s", "dkim": record.get("adkim") == "s"}
        passed = any(
            r.result == PASS and aligned(r.domain, domain, strict=strict[r.method])
            for r in results
            if r.method in strict
        )
        if not passed:
            unchecked = [r for r in results if r.method in strict and r.result == "temperror"]
            if unchecked:
                # A check DNS did not answer might have passed: no fail yet (RFC 7489 6.6.2).
                note = "; ".join(f"{r.method}: {r.note or 'no answer'}" for r in unchecked)
                return Result("dmarc", "temperror", domain, note=note)
        return Result("dmarc", PASS if passed else "fail", domain, note=f"p={record['p']}")

    def _policy(self, resolver: dns.resolver.Resolver, domain: str) -> dict[str, str] | None:
        """The From domain's DMARC record, else its organisational domain's (RFC 7489 6.6.3);
        none where there is not exactly one."""
        for name in dict.fromkeys((domain, organisational_domain(domain))):
            found = [
                t.decode("utf-8", "replace")
                for t in self._txt(resolver, f"_dmarc.{name}")
                if t[:8].upper() == b"V=DMARC1"
            ]
            if len(found) == 1:
                tags: dict[str, str] = answer_to_dict(found[0])
                return tags if tags.get("p") in ("none", "quarantine", "reject") else None
        return None
