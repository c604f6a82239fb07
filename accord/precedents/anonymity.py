"""What the anonymised view of a precedent may say, decided against the directory as it is when
the view is made.

- **Parties** appear as a label of tier and region, generalised until at least `k` partners of
  the directory are shown as it (k-anonymity: a label that k partners fit but fewer are shown
  as, the others having a more specific one, would name them; `Population._recode`). The
  ladder, most specific first: tier and region; the region alone; tier and the wider region
  (`WIDER_REGIONS`: UK-IE within EMEA, NA-East within NA within AMER); the wider region alone;
  and so on up; then the tier alone; then "a partner".
- **Names**: every partner's name, its legal-form variants (cleanco), its first distinctive
  word, its id and its email domains become that partner's label; every part of every name of
  a party's contacts and people (given names, surnames, each half of a double-barrelled name)
  becomes "[contact]", as do the full names of every other partner's contacts. Matching is
  case- and accent-insensitive and whole-word ("Hale" and "Hale's", never "wholesale").
- **Amounts** in every common form (with or without a currency; `125,000`, `125.000`,
  `125 000`, `€1,25 Mio`, `1.25M`, `$125k`, `USD 125,000.00`) above the threshold become a band
  of powers of ten, "[an amount between 100,000 and 1,000,000]": a reader still sees the size of
  what was at stake, never the figure. Years, dates, clause numbers and amounts at or under the
  threshold stay.
- **References** to the parties' own objects (deal registrations like DR-2026-0042,
  opportunities, leads, accounts, price lists, invoices, orders, the dispute's contested
  objects) become "[reference]".
- Email addresses become "[email]", telephone numbers "[phone]".
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from cleanco import basename  # type: ignore[import-untyped]
from cleanco.non_nfkd_map import NON_NFKD_MAP  # type: ignore[import-untyped]
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from models.tables import Partner, PartnerContact, Person

DEFAULT_K = 3
DEFAULT_AMOUNT_THRESHOLD = Decimal(10_000)

WIDER_REGIONS = {
    **dict.fromkeys(("NA-EAST", "NA-WEST", "NA-CENTRAL", "US", "CA", "CANADA"), "NA"),
    **dict.fromkeys(("NA", "LATAM", "BR", "MX", "SOUTH-AMERICA"), "AMER"),
    **dict.fromkeys(("DACH", "UK-IE", "UK", "IE", "FR-BENELUX", "FR", "BENELUX"), "EMEA"),
    **dict.fromkeys(("NORDICS", "IBERIA", "ITALY", "CEE", "MEA", "ME", "AFRICA", "DE"), "EMEA"),
    **dict.fromkeys(("APJ", "ANZ", "JP", "JAPAN", "IN", "INDIA", "SEA", "ASEAN"), "APAC"),
    **dict.fromkeys(("CN", "CHINA", "KR", "AU", "NZ", "SG"), "APAC"),
}
"""The region ladder: each region's wider region (by the whole code, else by its first part, so
"NA-South" is within NA). EMEA, APAC, AMER and regions not listed have none: a label that
cannot be shared by k partners there drops the region."""

GENERIC_WORDS = frozenset(
    """advanced alliance american applied business capital channel cloud communications company
    computer consulting data digital direct distribution enterprise first general global group
    holdings industries information integration international management national network networks
    north partner partners sales services smart software solutions south systems technologies
    technology traders trading united vendor west east world""".split()  # noqa: SIM905
)
"""First words of partner names too common to stand for the partner on their own."""

PARTICLES = frozenset(
    "van von der den de da di del della la le du dos das bin al el ter ten".split()  # noqa: SIM905
)
"""Name particles: part of a name only next to the rest of it ("van der Berg")."""

AMBIGUOUS_NAME_PARTS = frozenset(
    """bill black brown chase cook fair ford frank gay gold green grant hall hill hope king
    lane long mark may miles page park price rich rose sales stone strong summer walker white
    will wood young""".split()  # noqa: SIM905
)
"""Name parts that are also common words: scrubbed only when written with a capital, so a
contact called Dana Price does not turn "the price list" into "the [contact] list"."""

FUNCTION_WORDS = frozenset(
    """a an and are as at be but by can do for from go had has he her his if in is it its me my
    no not of on or our so than that the then they this to up us was we who will with
    you""".split()  # noqa: SIM905
)
"""Words a name may hold ("An Nguyen", "Do Van Ha") that are never scrubbed on their own: the
text would lose its grammar. The full name, and every other part, still are."""

_FOLD = {**NON_NFKD_MAP, "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ð": "d", "þ": "th"}
# Dotless i, and the apostrophes people type: right, left, modifier letter, grave, acute.
_FOLD |= dict.fromkeys(("\u2019", "\u2018", "\u02bc", "`", "\u00b4"), "'") | {"\u0131": "i"}
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5"
    "\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff"
    "\uffa0\U000e0000-\U000e0fff]"
)
"""Control, zero-width and other characters drawn as nothing (joiners, invisible operators,
bidi controls, variation selectors, tags, Hangul fillers): dropped first, so "Ha\u200ble" and
"Ha\u2063le" are still Hale."""


def fold(text: str) -> tuple[str, list[int] | None]:
    """The text lower-cased without accents ("Núñez" -> "nunez"), and for each folded character
    the index of the character it came from (None: the same index, for ASCII text)."""
    if text.isascii():
        return text.lower(), None
    out: list[str] = []
    origin: list[int] = []
    for i, char in enumerate(text):
        plain = _FOLD.get(char)
        if plain is None:
            decomposed = unicodedata.normalize("NFKD", char)
            plain = "".join(c for c in decomposed if not unicodedata.combining(c))
        plain = plain.casefold()
        out.append(plain)
        origin.extend([i] * len(plain))
    return "".join(out), origin


def fold_name(name: str) -> str:
    return re.sub(r"\s+", " ", fold(name)[0]).strip()


# --- who is in the directory, and the labels they share ------------------------------------------


@dataclass(frozen=True)
class KnownPartner:
    id: str
    name: str
    tier: str
    regions: tuple[str, ...]
    email_domains: tuple[str, ...] = ()
    people: tuple[str, ...] = ()
    """Names of its contacts and of its people in the directory."""


def region_chain(region: str | None) -> list[str]:
    """The region and each wider one, narrowest first ("UK-IE", "EMEA")."""
    chain: list[str] = []
    current = (region or "").strip()
    while current and current.upper() not in {c.upper() for c in chain}:
        chain.append(current)
        key = current.upper()
        current = WIDER_REGIONS.get(key) or WIDER_REGIONS.get(key.split("-")[0]) or ""
    return chain


@dataclass(frozen=True)
class Population:
    """The directory's partners as anonymisation needs them, read once and used for many
    precedents; `k` partners at least must share every label shown."""

    partners: tuple[KnownPartner, ...]
    k: int = DEFAULT_K
    _counts: Counter[tuple[str | None, str | None]] = field(
        default_factory=Counter, compare=False, repr=False
    )
    _patterns: dict[str, Names] = field(default_factory=dict, compare=False, repr=False)
    _recoded: dict[tuple[str, str | None], tuple[str | None, str | None]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        for partner in self.partners:
            keys: set[tuple[str | None, str | None]] = {(partner.tier, None), (None, None)}
            for region in partner.regions:
                for wider in region_chain(region):
                    keys |= {(partner.tier, wider.upper()), (None, wider.upper())}
            self._counts.update(keys)
        self._recoded.update(self._recode())

    def _ladder(self, tier: str | None, region: str | None) -> list[tuple[str | None, str | None]]:
        steps: list[tuple[str | None, str | None]] = []
        for wider in region_chain(region):
            steps += [(tier, wider), (None, wider)]
        if tier:
            steps.append((tier, None))
        return [*steps, (None, None)]

    def _recode(self) -> dict[tuple[str, str | None], tuple[str | None, str | None]]:
        """Each directory partner's (tier, region) and the label it is shown as. A label is
        safe only if at least k partners are SHOWN as it, not merely fit it: were a rare tier's
        partner alone to fall back to "a partner in UK-IE" while the others there stay "a gold
        partner in UK-IE", the vaguer label would name it. So a label fewer than k partners are
        shown as with a region takes in the partners whose ladders pass through it (the gold
        ones become "a partner in UK-IE" too) when that makes k; otherwise its own go one step
        further up, and "a partner" takes in whoever it needs; until no label is shown for fewer
        than k (or the whole directory is fewer than k)."""
        owners: dict[tuple[str, str | None], set[str]] = {}
        shown_region: dict[tuple[str, str | None], str | None] = {}
        for partner in self.partners:
            for region in partner.regions or (None,):
                key = (partner.tier, region.upper() if region else None)
                owners.setdefault(key, set()).add(partner.id)
                shown_region.setdefault(key, region)
        ladders = {
            key: [(t, r.upper() if r else None) for t, r in self._ladder(key[0], region)]
            for key, region in shown_region.items()
        }
        position = {
            key: next(
                i
                for i, step in enumerate(steps)
                if self.sharing(*step) >= self.k or i == len(steps) - 1
            )
            for key, steps in ladders.items()
        }
        while True:
            shown_as: dict[tuple[str | None, str | None], set[str]] = {}
            for key, at in position.items():
                shown_as.setdefault(ladders[key][at], set()).update(owners[key])
            # Labels with a region first: pulling partners into one keeps a region shown.
            order = sorted(shown_as, key=lambda label: (label[1] is None, str(label)))
            small = next((label for label in order if len(shown_as[label]) < self.k), None)
            if small is None:
                break
            mine = [key for key, at in position.items() if ladders[key][at] == small]
            below: dict[tuple[str | None, str | None], list[tuple[str, str | None]]] = {}
            for key, at in position.items():
                if small in ladders[key][at + 1 :]:
                    below.setdefault(ladders[key][at], []).append(key)
            # The fewest partners that make k: whole labels, the smallest first.
            joined = set(shown_as[small])
            pulled: list[tuple[str, str | None]] = []
            for label in sorted(below, key=lambda label: (len(shown_as[label]), str(label))):
                if len(joined) >= self.k:
                    break
                pulled += below[label]
                joined |= set().union(*(owners[key] for key in below[label]))
            at_top = any(position[key] == len(ladders[key]) - 1 for key in mine)
            # Pull into a regional label ("a partner in UK-IE"), or into "a partner" when
            # nothing is left above; a tier alone is not worth every region of that tier.
            if pulled and len(joined) >= self.k and (small[1] is not None or at_top):
                for key in pulled:
                    position[key] = ladders[key].index(small)
            elif not at_top:
                for key in mine:
                    position[key] += 1
            else:
                break  # the whole directory is fewer than k partners
        original = {key: self._ladder(key[0], region) for key, region in shown_region.items()}
        return {key: original[key][at] for key, at in position.items()}

    def sharing(self, tier: str | None, region: str | None) -> int:
        """How many partners a label of this tier (None: any) and region (None: any) fits."""
        return self._counts[(tier, region.upper() if region else None)]

    def generalised(self, tier: str | None, region: str | None) -> tuple[str | None, str | None]:
        """The most specific (tier, region) on the ladder that at least k partners are shown as
        (a directory partner's), or else share (a tier and region no partner has now)."""
        recoded = self._recoded.get((tier or "", region.upper() if region else None))
        if recoded is not None:
            return recoded
        for wider in region_chain(region):
            for candidate in ((tier, wider), (None, wider)):
                if self.sharing(*candidate) >= self.k:
                    return candidate
        if tier and self.sharing(tier, None) >= self.k:
            return tier, None
        return None, None

    def label(self, tier: str | None, region: str | None) -> str:
        shown_tier, shown_region = self.generalised(tier, region)
        words = f"a {shown_tier} partner" if shown_tier else "a partner"
        return f"{words} in {shown_region}" if shown_region else words

    def names(self, parties: list[dict[str, Any]]) -> tuple[Names, Names]:
        """The names to scrub from a precedent with these parties: theirs (every part of their
        people's names), then everyone else's in the directory (compiled once)."""
        fields = ("partner_id", "name", "tier", "region", "contacts")
        key = json.dumps([[p.get(f) for f in fields] for p in parties])
        found = self._patterns.get(key)
        if found is None:
            if len(self._patterns) > 1_000:
                self._patterns.clear()
            found = self._patterns[key] = _party_names(self, parties)
        return found, _directory_names(self)


def load_population(session: Session, k: int = DEFAULT_K) -> Population:
    """Every partner of the directory (active or not: an old precedent's party may have left),
    with the names of its contacts and people."""
    # Only the columns needed, named: a migration calls this too, on the schema of its time.
    people: dict[str, list[str]] = {}
    for owner, name in session.exec(select(PartnerContact.partner_id, PartnerContact.name)):
        people.setdefault(owner, []).append(name)
    staff = select(Person.organisation, Person.name).where(Person.organisation != "vendor")
    for owner, name in session.exec(staff):
        people.setdefault(owner, []).append(name)
    names = (Partner.id, Partner.name, Partner.tier, Partner.regions, Partner.email_domains)
    rows = session.execute(sa_select(*map(col, names)).order_by(col(Partner.id))).all()
    partners = tuple(
        KnownPartner(
            id=pid,
            name=name,
            tier=tier.value,
            regions=tuple(regions or ()),
            email_domains=tuple(domains or ()),
            people=tuple(people.get(pid, ())),
        )
        for pid, name, tier, regions, domains in rows
    )
    return Population(partners, k)


# --- names -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Names:
    """Names to replace, and what replaces each."""

    pattern: re.Pattern[str] | None
    labels: dict[str, str]
    """Folded name ("nunez") -> what replaces it."""
    capitalised_only: frozenset[str] = frozenset()


def partner_aliases(name: str, partner_id: str = "", domains: Iterable[str] = ()) -> set[str]:
    """The ways a text names a partner: its name, without its legal form ("Adatum GmbH" is also
    "Adatum"), its first distinctive word ("Northwind"), its id and its email domains' names."""
    names = {name, basename(name), re.sub(r"(?i)^the\s+", "", name)}
    others = {re.sub(r"['\u2019]s$", "", n.split()[0]) for n in names if len(n.split()) > 1}
    others |= {partner_id, partner_id.replace("-", " "), partner_id.replace("_", " ")}
    for domain in domains:
        labels = [part for part in domain.lower().split(".") if part]
        while len(labels) > 1 and (len(labels[-1]) <= 3 or labels[-1] in ("example", "local")):
            labels.pop()
        if labels and labels[-1] in ("co", "com", "org", "net", "ac", "gov"):
            labels.pop()
        if labels:
            others.add(labels[-1])
    # The name stands for the partner whatever its words; a first word, an id or a domain
    # only when distinctive ("Vendor Direct Sales" is the vendor's; "direct sales" is a term).
    distinctive = {
        o for o in others if not set(re.split(r"[\s_-]+", fold_name(o))) <= GENERIC_WORDS
    }
    return {a.strip() for a in names | distinctive if len(fold_name(a)) >= 4}


def name_parts(name: str) -> set[str]:
    """Every part of a person's name: "Ana-María de la Núñez" -> the whole, "Ana-María",
    "Ana", "María", "Núñez" (particles only with the rest)."""
    parts = {name.strip()}
    for word in name.split():
        word = word.strip(".,;:()\"'")
        if len(word) < 2 or fold_name(word) in PARTICLES:
            continue
        parts.add(word)
        parts |= {piece for piece in re.split(r"[-'\u2019]", word) if len(piece) >= 2}
    return {p for p in parts if p and fold_name(p) not in PARTICLES | FUNCTION_WORDS}


def _party_names(population: Population, parties: list[dict[str, Any]]) -> Names:
    labels: dict[str, str] = {}
    by_id = {p.id: p for p in population.partners}
    for party in parties:
        pid = str(party.get("partner_id") or "")
        label = population.label(party.get("tier"), party.get("region"))
        known = by_id.get(pid)
        domains = known.email_domains if known else ()
        for alias in partner_aliases(str(party.get("name") or ""), pid, domains):
            _add(labels, alias, label)
        people = list(known.people) if known else []
        for contact in party.get("contacts", ()):
            # The person behind an address is named in letters too: "carl.meyer@" is Carl Meyer.
            local = str(contact).split("@")[0]
            people += [p for p in re.split(r"[._+-]", local) if len(p) >= 3 and p.isalpha()]
        for person in people:
            for part in name_parts(person):
                if fold_name(part) not in ROLE_MAILBOXES:
                    _add(labels, part, "[contact]")
    return _compile(labels)


@functools.lru_cache(maxsize=4)
def _directory_names(population: Population) -> Names:
    """Every partner of the directory by its own label, and its people by their full names
    (a part alone, "Will" or "Long", is too common to scrub from every precedent). Cached by
    the directory's content: compiling it for thousands of partners takes a second or two, and
    every partner's page view reads the directory afresh."""
    labels: dict[str, str] = {}
    for partner in population.partners:
        label = population.label(partner.tier, partner.regions[0] if partner.regions else None)
        for alias in partner_aliases(partner.name, partner.id, partner.email_domains):
            _add(labels, alias, label)
        for person in partner.people:
            words = person.split()
            if len(words) > 1:
                _add(labels, person, "[contact]")
                # As lists and signatures write it: "Quinn, Nora".
                _add(labels, f"{words[-1]}, {' '.join(words[:-1])}", "[contact]")
    return _compile(labels)


def _add(labels: dict[str, str], name: str, label: str) -> None:
    folded = fold_name(name)
    if len(folded) >= 2:
        labels.setdefault(folded, label)  # the first to claim a name keeps it


_LEGAL_FORM = (
    r",?\s+(?:inc|incorporated|ltd|limited|llc|gmbh|ag|plc|bv|nv|pty|corp|corporation|sarl|sas"
    r"|srl|kk|oy|fzco|fze|fz)\b\.?"
)
"""A legal form after a partner's name goes with it ("Adatum AG" when the directory says
"Adatum GmbH"); only forms that are not also English words ("as", "co", "company")."""


def _compile(labels: dict[str, str]) -> Names:
    if not labels:
        return Names(None, {})
    # Whole words only, the longest name first ("Contoso Systems" before "Contoso").
    pattern = re.compile(rf"(?<!\w)(?P<name>{_trie(labels)})(?:{_LEGAL_FORM})?(?!\w)")
    ambiguous = frozenset(
        n for n, label in labels.items() if label == "[contact]" and n in AMBIGUOUS_NAME_PARTS
    )
    return Names(pattern, labels, ambiguous)


def _trie(names: Iterable[str]) -> str:
    """One regular expression for many names, as a trie ("contoso(?: systems)?"): Python's
    engine tries a plain alternation of thousands of names one by one at every character; a
    trie reads each character once. Optional tails are greedy, so the longest name wins; a
    space in a name matches any spacing."""
    root: dict[str, Any] = {}
    for name in names:
        node = root
        for char in name:
            node = node.setdefault(char, {})
        node[""] = {}  # a name ends here

    def expression(node: dict[str, Any]) -> str:
        branches = [
            (r"\s+" if char == " " else re.escape(char)) + expression(child)
            for char, child in sorted(node.items())
            if char
        ]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return expression(root)


ROLE_MAILBOXES = frozenset(
    {"admin", "billing", "channel", "contact", "deals", "hello", "info", "mail", "noreply"}
    | {"office", "partner", "partners", "sales", "support", "team"}
)
"""Address parts that name a function, not a person: ordinary words, never scrubbed."""

_RUN = re.compile(
    r"\[contact\](?:(?:[\s-]+(?:" + "|".join(sorted(PARTICLES)) + r"))*[\s-]+\[contact\])+",
    re.IGNORECASE,
)


def scrub_names(text: str, names: Names) -> str:
    if names.pattern is None:
        return text
    folded, origin = fold(text)
    pieces: list[str] = []
    last = 0
    for found in names.pattern.finditer(folded):
        key = fold_name(found["name"])
        start, end = found.span()
        if origin is not None:  # back to the original text's characters
            start, end = origin[start], origin[end - 1] + 1
        if key in names.capitalised_only and not text[start : start + 1].isupper():
            continue  # "the price list", not Dana Price
        pieces += [text[last:start], names.labels[key]]
        last = end
    pieces.append(text[last:])
    # "Dana [contact]", one person, becomes one "[contact]".
    return _RUN.sub("[contact]", "".join(pieces))


# --- amounts, references, addresses, telephone numbers ------------------------------------------

# Starting only where a run of such characters starts: tried from every character inside a
# long run without an "@" ("1.0001.000..."), it read the run to its end each time (quadratic).
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_CODES = "USD|EUR|GBP|CHF|JPY|CAD|AUD|NZD|SEK|NOK|DKK|INR|SGD|CNY|HKD|BRL|MXN|ZAR|AED|PLN"
_SYMBOLS = r"US\$|A\$|C\$|(?<![A-Za-z])Rs\.?|[$€£¥₹]"
_INDIAN = r"\d{1,2}(?:,\d{2})+,\d{3}(?:\.\d{1,2})?"  # 1,25,000 / 12,50,000.00 (lakh grouping)
_GROUPED_NUMBER = _INDIAN + r"|\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|\d{1,3}(?:\.\d{3})+(?:,\d{1,2})?"
"""A number written with separators of thousands: an amount, never a reference's digits."""
_NUMBER = (
    _INDIAN + "|"
    r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?"  # 125,000 / 125,000.00
    r"|\d{1,3}(?:\.\d{3})+(?:,\d{1,2})?"  # 125.000 / 125.000,00
    r"|\d{1,3}(?:[ \u00a0\u2009\u202f']\d{3})+(?:[.,]\d{1,2})?"  # 125 000 / 1'250'000
    r"|\d+(?:[.,]\d+)?"  # 125000 / 1.25 / 1,25
)
_SCALE = (
    r"\s?(?:k|m|mm|mn|bn|mio|mrd|tsd|thousand|million|millions|billion|billions"
    r"|lakhs?|lacs?|crores?|cr)\b\.?"
)
_CURRENCY_WORDS = r"dollars?|euros?|pounds?|francs?|yen|rupees?"
_AMOUNT = re.compile(
    rf"(?:(?P<sym>{_SYMBOLS})\s?|\b(?P<pre>{_CODES})\s?)(?P<n1>{_NUMBER})(?P<s1>{_SCALE})?"
    # "125 TEUR", "125 kEUR", "2 M€": a thousand or a million of the currency, in one word.
    rf"|(?<![\w.,-])(?P<n2>{_NUMBER})(?P<s2>{_SCALE})?\s?(?P<unit>[tkm](?=(?:{_CODES}|[€£$])(?!\w)))?"
    rf"(?P<post>{_CODES}|{_CURRENCY_WORDS}|[€£$])"
    r"(?!\w)"
    rf"|(?<![\w.,/-])(?P<n3>{_NUMBER})(?P<s3>{_SCALE})?(?![\w/-]|[.,]\d)"
    # Grouped in thousands, a number is an amount even in a range, negative or per period
    # ("100,000-125,000", "-125,000", "125,000/yr"); after a letter and a hyphen, a reference's.
    rf"|(?<![\w.,])(?<![A-Za-z]-)(?P<n4>{_GROUPED_NUMBER})(?P<s4>{_SCALE})?(?!\w|[.,]\d)",
    re.IGNORECASE,
)
_SCALES = {"k": 1_000, "thousand": 1_000, "tsd": 1_000}
_SCALES |= dict.fromkeys(("m", "mm", "mn", "mio", "million", "millions"), 1_000_000)
_SCALES |= dict.fromkeys(("bn", "mrd", "billion", "billions"), 1_000_000_000)
_SCALES |= dict.fromkeys(("lakh", "lakhs", "lac", "lacs"), 100_000)
_SCALES |= dict.fromkeys(("crore", "crores", "cr"), 10_000_000)
_YEAR = re.compile(r"(?:19|20)\d\d")
_TOP_BAND = Decimal(10_000_000)


def amount_value(number: str, scale: str | None) -> Decimal | None:
    """The value of '125,000' / '1.250.000,50' / '125 000' / '1,25' with 'Mio': separators
    read as people write them (a final group of 1-2 digits after ',' or '.' is the decimals;
    a group of three after one separator, as in '125.000', is thousands)."""
    number = number.strip()
    if re.fullmatch(_INDIAN, number):
        number = number.replace(",", "")
    # A separator after a lone 0 is the decimal point ("0.125m"): no thousands start with 0.
    digits = re.sub(r"(?<!^0)[,.' \u00a0\u2009\u202f](?=\d{3}(?:\D|$))", "", number)
    try:
        value = Decimal(digits.replace(",", "."))
    except InvalidOperation:
        return None
    return value * _SCALES.get((scale or "").strip().rstrip(".").lower(), 1)


def amount_band(value: Decimal) -> str:
    """The power-of-ten band of an amount: "between 100,000 and 1,000,000"; past ten million
    (few deals, so a narrower band would point at one), "over 10,000,000"."""
    if value >= _TOP_BAND:
        return f"over {_TOP_BAND:,.0f}"
    if value < 1:
        return "under 1"
    low = Decimal(10) ** value.adjusted()  # adjusted(): the exponent of the leading digit
    return f"between {low:,.0f} and {low * 10:,.0f}"


def scrub_amounts(text: str, threshold: Decimal) -> str:
    """Amounts over the threshold, in any common form, become their band. A bare number is an
    amount only with four digits or more, and never a year."""

    def replace(found: re.Match[str]) -> str:
        number = found["n1"] or found["n2"] or found["n3"] or found["n4"]
        scale = found["s1"] or found["s2"] or found["s3"] or found["s4"]
        if found["n3"] is not None and not scale:
            whole = re.split(r"[.,](?=\d{1,2}$)", number)[0]
            if sum(c.isdigit() for c in whole) < 4 or _YEAR.fullmatch(number):
                return found[0]  # a count, a clause number or a year
        value = amount_value(number, scale)
        if value is not None and found["unit"]:
            value *= 1_000_000 if found["unit"].lower() == "m" else 1_000
        if value is None or value <= threshold:
            return found[0]
        return f"[an amount {amount_band(value)}]"

    return _AMOUNT.sub(replace, text)


_PHONE = re.compile(
    r"(?<![\w-])(?!\d{4}-\d\d-\d\d|\d\d?[./-]\d\d?[./-]\d{4})"  # not a date ("2026-03-02 10:00")
    r"(?:\+|00)?\(?\d{1,4}\)?(?:[ .\u00a0\u2009\u202f-]?\(?\d{1,5}\)?){2,}+(?![\w-])"
)
"""Digit groups joined by single spaces, dots or hyphens, "+49 30 1234 5678"."""
_GROUPED = re.compile(r"\d{1,3}(?:[ .\u00a0\u2009\u202f]\d{3})+(?:,\d{1,2})?")


def _phone(found: re.Match[str]) -> str:
    # Nine digits or more: a date (8) or a short reference is not a telephone number, and
    # "125 000 000" is an amount.
    if _GROUPED.fullmatch(found[0]) or sum(c.isdigit() for c in found[0]) < 9:
        return found[0]
    return "[phone]"


_REFERENCE_WORDS = (
    r"deal(?:\s+registration)?|registration|reg|opportunity|opp|lead|account|acct|price[\s-]?list"
    r"|quote|invoice|inv|purchase\s+order|po|order|contract|sku|ref|reference"
)
_KEYWORD_REFERENCE = re.compile(
    rf"\b(?P<word>{_REFERENCE_WORDS})\b(?P<gap>\.?\s*(?:no\.?|number|nr\.?|id|#)?\s*[:#]?\s*)"
    r"(?P<ref>(?=[\w/-]*\d)[A-Za-z0-9][\w/-]*[A-Za-z0-9])",
    re.IGNORECASE,
)
# An id in capitals and digits ("DR-2026-0042", "NW-REG-7781", "PO4500012345"), or a CRM's
# 15/18-character id; a product name in mixed case ("Office365") is not one.
_SHAPED_REFERENCE = re.compile(
    r"(?<![\w-])(?P<ref>[A-Z]{1,8}(?:[-_][A-Z]{1,8})*[-_#/]?\d\w*(?:[-_/.][A-Za-z0-9]+)*"
    r"|00[0-9A-Za-z]{13}(?:[0-9A-Za-z]{3})?)(?![\w-])"
)
_NOT_REFERENCES = re.compile(
    rf"(?i)(?:q[1-4]|h[12]|fy\d{{2,4}}|b2[bc]|iso|covid)[-\s]?\d*|(?:{_CODES})[\d.,]+"
)
"""Quarters, fiscal years and the like, and an amount written against its currency code."""


def _is_reference(token: str) -> bool:
    digits = sum(c.isdigit() for c in token)
    # One digit is enough after a code and a separator ("DR-7"); otherwise two ("A1" is not).
    coded = re.match(r"[A-Z]{2,}[-_#/]\d", token) is not None
    if digits < (1 if coded else 2) or _NOT_REFERENCES.fullmatch(token) or _YEAR.fullmatch(token):
        return False
    # A date or a plain small number is not an object's reference.
    return not re.fullmatch(r"\d{1,4}(?:[-/.]\d{1,2}){0,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}", token)


def scrub_references(text: str, objects: Iterable[str]) -> str:
    """The parties' own objects' references become "[reference]": the dispute's contested
    objects wherever they appear, ids after a word naming the kind of object ("invoice
    2026-1182", "PO 4500012345"), and ids shaped like them ("DR-2026-0042", "OPP-00123")."""
    refs = sorted({o.strip() for o in objects if len(o.strip()) >= 3}, key=len, reverse=True)
    if refs:
        # Written with any separators, or none, between its parts ("DR 2026 0042").
        spelled = ["[\\s_./-]*".join(map(re.escape, re.findall(r"[^\W_]+", r))) for r in refs]
        exact = re.compile(
            r"(?<![\w-])(?:" + "|".join(s for s in spelled if s) + r")(?![\w-])", re.IGNORECASE
        )
        text = exact.sub("[reference]", text)

    def keyword(found: re.Match[str]) -> str:
        if not _is_reference(found["ref"]):
            return found[0]
        return f"{found['word']}{found['gap']}[reference]"

    text = _KEYWORD_REFERENCE.sub(keyword, text)
    return _SHAPED_REFERENCE.sub(lambda f: "[reference]" if _is_reference(f["ref"]) else f[0], text)


def scrub_text(
    text: str,
    names: Iterable[Names],
    objects: Iterable[str] = (),
    threshold: Decimal = DEFAULT_AMOUNT_THRESHOLD,
) -> str:
    """Free text as the anonymised view shows it."""
    text = _INVISIBLE.sub("", text)
    # Addresses first: a name inside one would otherwise be replaced and leave the rest behind.
    text = _EMAIL.sub("[email]", text)
    text = scrub_references(text, objects)
    for each in names:
        text = scrub_names(text, each)
    text = _PHONE.sub(_phone, text)
    return scrub_amounts(text, threshold)


def public_amount(value: Decimal, threshold: Decimal) -> str:
    return f"{value:,.2f}" if value <= threshold else amount_band(value)
