"""Is this the same end customer? Two registrations (or a registration and an opportunity, a
lead, an account) compared by what a CRM row says of its customer: name, web domain, address,
country. Pure functions, no I/O; tests/channel/labelled_pairs.csv measures them (bench.matching).

Names are compared by their keys (accord.channel.names: legal form, case, accents, script gone)
with rapidfuzz, word by word: the words every company uses ("global", "systems", "bank") count
for little, the distinctive ones decide. A domain both rows give is the strongest evidence either
way (webmail domains say nothing); an address or a country that agrees tips a near name over.

Candidates come from blocking keys, never from all pairs: two rows are compared only when they
share a key (a distinctive word, its first letters, the domain, the initials).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

from rapidfuzz import fuzz
from rapidfuzz.distance import OSA

from accord.channel.names import customer_key


def _words(text: str) -> frozenset[str]:
    # One string, split: a word list reads better as prose than as 150 quoted items.
    return frozenset(text.split())


GENERIC = _words(
    """
    a an and of the for in on at by to de du des la le les el los las der die das und et y
    group holding holdings global international intl worldwide national regional american
    european asia pacific north south east west central united general first new
    company co corp corporation inc incorporated limited ltd llc plc gmbh ag sa sas srl bv nv
    systems system solutions solution services service technologies technology tech software
    consulting partners partner enterprises enterprise industries industry associates
    management capital ventures network networks digital data labs products trading
    bank financial insurance health healthcare medical pharma energy foods food logistics
    manufacturing retail media communications telecom engineering construction motors
    automotive airlines transport shipping realty properties hotels resorts
    usa us uk de fr germany deutschland france italia espana nederland canada america europe
    """
)
"""Words shared by unrelated companies: they neither make a match nor open a block alone."""

WEBMAIL = _words(
    "gmail.com googlemail.com yahoo.com hotmail.com outlook.com live.com aol.com icloud.com"
    " gmx.de gmx.net web.de mail.ru yandex.ru proton.me protonmail.com qq.com 163.com"
)

ABBREVIATIONS = {
    "intl": "international",
    "int": "international",
    "co": "company",
    "corp": "corporation",
    "tech": "technologies",
    "technology": "technologies",
    "mfg": "manufacturing",
    "svcs": "services",
    "svc": "services",
    "service": "services",
    "bros": "brothers",
    "st": "saint",
    "mgmt": "management",
    "natl": "national",
    "sys": "systems",
    "assoc": "associates",
    "ctr": "center",
    "centre": "center",
    "dept": "department",
    "univ": "university",
    "labs": "laboratories",
    "lab": "laboratories",
}

QUICK_NO = 50
"""Below this token-set ratio of their keys (0 to 100), two names on different or unknown
domains are not compared further (a name that may be initials always is)."""
SAME = 0.85
"""The score from which two rows are taken for one customer (bench.matching measures it)."""
_CONNECTIVES = _words(
    "a an and of the for in on at by to de du des la le les el los las der die das und et y"
)
"""Generic words that say nothing of a line of business."""


@dataclass(frozen=True)
class Customer:
    name: str
    domain: str | None = None
    address: str | None = None
    country: str | None = None
    key: str = field(default="")

    def keyed(self) -> Customer:
        if self.key:
            return self
        return Customer(self.name, self.domain, self.address, self.country, customer_key(self.name))

    # Worked out once per row: detection compares each row with many.
    @cached_property
    def words(self) -> list[str]:
        return [ABBREVIATIONS.get(w, w) for w in self.key.split()]

    @cached_property
    def distinctive(self) -> list[str]:
        return [w for w in self.words if w not in GENERIC and len(w) > 1]

    @cached_property
    def generic(self) -> frozenset[str]:
        return frozenset(w for w in self.words if w in GENERIC)

    @cached_property
    def initials(self) -> str:
        return "".join(w[0] for w in self.words if w not in {"and", "of", "the"})

    @cached_property
    def spelled(self) -> str:
        return " ".join(self.words)


@dataclass(frozen=True)
class Match:
    score: float
    """0 to 1; SAME and above: one customer."""
    reasons: tuple[str, ...]

    @property
    def same(self) -> bool:
        return self.score >= SAME


def blocking_keys(customer: Customer) -> set[str]:
    """The keys under which a row is filed for candidate search: any shared key makes two rows
    candidates. A distinctive word (its first and last four letters, which a typo in the other
    half leaves whole, and its letters in order, which two swapped leave), the domain, and the
    initials of a name of three words or more
    (or a short name that may be initials itself)."""
    c = customer.keyed()
    keys: set[str] = set()
    if c.domain and c.domain not in WEBMAIL:
        keys.add(f"d:{c.domain}")
    for word in c.distinctive:
        keys.add(f"w:{word}")
        if len(word) >= 6:
            keys.add(f"p:{word[:4]}")
            keys.add(f"s:{word[-4:]}")
        if len(word) >= 5:
            keys.add(f"l:{''.join(sorted(word))}")  # its letters: two swapped keep them
    all_words = c.words
    if len(all_words) >= 3:
        keys.add(f"i:{c.initials}")
    elif len(all_words) == 1 and 2 <= len(all_words[0]) <= 5:
        keys.add(f"i:{all_words[0]}")
    if not keys and c.key:
        keys.add(f"k:{c.key}")  # a name of generic words only ("Global Systems")
    return keys


def _word_similarity(a: list[str], b: list[str]) -> float:
    """How well the distinctive words of one name are found in the other's, 0 to 1: each word
    of the shorter list against its best partner (a typo costs little, a different word all)."""
    if not a or not b:
        return 0.0
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    total = 0.0
    for word in short:
        total += max(OSA.normalized_similarity(word, other) for other in long)
    return total / len(short)


def compare(one: Customer, other: Customer) -> Match:
    a, b = one.keyed(), other.keyed()
    if not a.key or not b.key:
        return Match(0.0, ("a name with nothing to compare (punctuation or a legal form only)",))
    reasons: list[str] = []
    same_domain = bool(a.domain and b.domain and a.domain == b.domain and a.domain not in WEBMAIL)
    other_domains = bool(
        a.domain
        and b.domain
        and a.domain != b.domain
        and a.domain not in WEBMAIL
        and b.domain not in WEBMAIL
    )
    short_name = (
        min(len(a.key.split()), len(b.key.split())) == 1 and min(len(a.key), len(b.key)) <= 5
    )
    if not same_domain and not short_name and fuzz.token_set_ratio(a.key, b.key) < QUICK_NO:
        # Most candidates a block brings share one word and nothing else: said in a microsecond.
        return Match(0.0, ())
    full = fuzz.token_sort_ratio(a.spelled, b.spelled) / 100
    da, db = a.distinctive, b.distinctive
    word = _word_similarity(da, db)
    if not da and not db:
        word = 1.0 if a.words == b.words else 0.0
    acronym = (len(a.words) == 1 and a.words[0] == b.initials and len(b.words) >= 3) or (
        len(b.words) == 1 and b.words[0] == a.initials and len(a.words) >= 3
    )
    covered = bool(da and db) and (set(da) <= set(db) or set(db) <= set(da))

    score = 0.8 * word + 0.2 * full
    if a.key and a.key == b.key:
        score = max(score, 0.97)
        reasons.append(f"the same name once legal form and spelling are set aside ({a.key!r})")
    elif covered:
        score = max(score, 0.86)
        reasons.append("one name's distinctive words are all in the other's")
    elif acronym:
        score = max(score, 0.82)
        reasons.append("one name is the other's initials")
    elif word >= 0.8:
        reasons.append(f"names alike ({round(100 * word)} % on their distinctive words)")
    # Generic words say little when shared, but none shared at all ("Kessler Logistics",
    # "Kessler Foods") is two lines of business: two companies, unless a domain says otherwise.
    ga, gb = a.generic - _CONNECTIVES, b.generic - _CONNECTIVES
    if ga and gb and not ga & gb:
        score -= 0.15
        reasons.append(
            f"different lines of business ({' '.join(sorted(ga))}; {' '.join(sorted(gb))})"
        )
    if same_domain:
        score = max(score, 0.6 + 0.4 * max(word, full)) if score < 0.9 else score
        score = max(score, 0.9 if word >= 0.5 or covered or acronym else score)
        reasons.append(f"the same web domain ({a.domain})")
    elif other_domains:
        score -= 0.25
        reasons.append(f"different web domains ({a.domain}, {b.domain})")
    if a.country and b.country:
        if a.country == b.country:
            score += 0.03
        elif not same_domain:
            score -= 0.08
            reasons.append(f"different countries ({a.country}, {b.country})")
    # An address agreeing tips a near name over; it never makes two names one (a business
    # park holds many companies). Its numbers must be the same: "12 Main St" is not "345 Main St".
    if a.address and b.address and max(word, full) >= 0.6:
        numbers = re.findall(r"\d+", a.address) == re.findall(r"\d+", b.address)
        if numbers and fuzz.token_sort_ratio(a.address.lower(), b.address.lower()) >= 90:
            score += 0.1
            reasons.append("the same address")
    return Match(max(0.0, min(1.0, score)), tuple(reasons))
