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

from dataclasses import dataclass, field

from rapidfuzz import fuzz
from rapidfuzz.distance import Levenshtein

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

SAME = 0.80
"""The score from which two rows are taken for one customer (bench.matching measures it)."""


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


@dataclass(frozen=True)
class Match:
    score: float
    """0 to 1; SAME and above: one customer."""
    reasons: tuple[str, ...]

    @property
    def same(self) -> bool:
        return self.score >= SAME


def words(key: str) -> list[str]:
    return [ABBREVIATIONS.get(w, w) for w in key.split()]


def distinctive(key: str) -> list[str]:
    return [w for w in words(key) if w not in GENERIC and len(w) > 1]


def initials(key: str) -> str:
    return "".join(w[0] for w in words(key) if w not in {"and", "of", "the"})


def blocking_keys(customer: Customer) -> set[str]:
    """The keys under which a row is filed for candidate search: any shared key makes two rows
    candidates. A distinctive word (and its first and last four letters, which a typo in the
    other half leaves whole), the domain, and the initials of a name of three words or more
    (or a short name that may be initials itself)."""
    c = customer.keyed()
    keys: set[str] = set()
    if c.domain and c.domain not in WEBMAIL:
        keys.add(f"d:{c.domain}")
    for word in distinctive(c.key):
        keys.add(f"w:{word}")
        if len(word) >= 6:
            keys.add(f"p:{word[:4]}")
            keys.add(f"s:{word[-4:]}")
    all_words = words(c.key)
    if len(all_words) >= 3:
        keys.add(f"i:{initials(c.key)}")
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
        total += max(Levenshtein.normalized_similarity(word, other) for other in long)
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
    full = fuzz.token_sort_ratio(" ".join(words(a.key)), " ".join(words(b.key))) / 100
    da, db = distinctive(a.key), distinctive(b.key)
    word = _word_similarity(da, db)
    if not da and not db:
        word = 1.0 if words(a.key) == words(b.key) else 0.0
    acronym = (
        len(words(a.key)) == 1 and words(a.key)[0] == initials(b.key) and len(words(b.key)) >= 3
    ) or (len(words(b.key)) == 1 and words(b.key)[0] == initials(a.key) and len(words(a.key)) >= 3)
    covered = bool(da and db) and (set(da) <= set(db) or set(db) <= set(da))

    score = 0.55 * word + 0.45 * full
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
    if a.address and b.address and fuzz.token_set_ratio(a.address, b.address) >= 90:
        score += 0.1
        reasons.append("the same address")
    return Match(max(0.0, min(1.0, score)), tuple(reasons))
