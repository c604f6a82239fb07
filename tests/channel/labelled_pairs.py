"""The labelled set of registration pairs that measures same-customer matching (issue 20,
item 3): tests/channel/labelled_pairs.csv, written by

    .venv/bin/python -m tests.channel.labelled_pairs

Generated, seeded, from invented companies, with the variations CRM data holds. Same customer
(label 1): a legal form added, dropped or swapped; abbreviations ("Intl.", "&", "Corp"); a
typo (a letter dropped, doubled, swapped or replaced); upper case and punctuation; a
subsidiary named by its country on the parent's domain; the name written in another script
(Cyrillic, Greek); a short and a long form on one domain; initials with the domain. Different
customers (label 0): names that share only generic words ("National Logistics Group" and
"National Foods Group"); one distinctive word a letter apart on different domains ("Kessler"
and "Kestler"); one company name in two industries; same-named branches of different banks in
different countries; and unrelated names.

Because the same code wrote the variations the matcher is measured on, the figures say how it
handles these variations, not how it would do on a real CRM: real data has kinds this set
lacks. The file is committed so a change to it shows in review.
"""

from __future__ import annotations

import csv
import random
import re
from pathlib import Path

HERE = Path(__file__).parent
PAIRS = HERE / "labelled_pairs.csv"
COLUMNS = (
    "variation",
    "same",
    "name_a",
    "domain_a",
    "country_a",
    "name_b",
    "domain_b",
    "country_b",
)

STEMS = [
    "kessler",
    "brightwater",
    "novara",
    "halvorsen",
    "tamberlane",
    "quillon",
    "ardent",
    "meridian",
    "corvell",
    "lindqvist",
    "ashgrove",
    "beaumont",
    "castellan",
    "dunmore",
    "everhart",
    "fairhaven",
    "granville",
    "holloway",
    "ingram",
    "jardine",
    "kingsley",
    "lockhart",
    "marchetti",
    "norcross",
    "oakridge",
    "pemberton",
    "quinlan",
    "ravenscroft",
    "sterling",
    "thornbury",
    "upland",
    "valcourt",
    "whitmore",
    "yardley",
    "zellweger",
    "abernathy",
    "blackwood",
    "carrington",
    "delacroix",
    "ellsworth",
    "fitzgerald",
    "gallagher",
    "hartwell",
    "ironwood",
    "juniper",
    "kowalski",
    "lancaster",
    "montague",
    "northcott",
    "ortega",
    "prescott",
    "rutherford",
    "sinclair",
    "trelawny",
    "underhill",
    "vandermeer",
    "wexford",
    "alderton",
    "brannigan",
    "cromwell",
    "drummond",
    "eastwood",
    "farrington",
    "glenmore",
    "hawthorne",
    "inverness",
    "jefferies",
    "kilbride",
    "langley",
    "mcallister",
    "newbury",
    "osgood",
    "pritchard",
    "radcliffe",
    "sutherland",
    "talbot",
    "vaughan",
    "wainwright",
    "ashby",
    "bellamy",
    "calloway",
    "denholm",
    "emerson",
    "fenwick",
    "gresham",
    "harrington",
    "ivanhoe",
    "jennings",
    "kendrick",
    "lowell",
    "merriweather",
    "nightingale",
    "oswald",
    "pickering",
    "redgrave",
    "somerset",
    "tennyson",
    "ulverston",
    "verity",
    "warrington",
]
INDUSTRY = [
    "Logistics",
    "Systems",
    "Foods",
    "Engineering",
    "Software",
    "Pharma",
    "Energy",
    "Media",
    "Motors",
    "Consulting",
    "Analytics",
    "Robotics",
    "Textiles",
    "Optics",
    "Chemicals",
    "Shipping",
    "Capital",
    "Dynamics",
    "Networks",
    "Instruments",
]
FORMS = [
    "Inc.",
    "Corp.",
    "Corporation",
    "GmbH",
    "Ltd",
    "Limited",
    "LLC",
    "S.A.",
    "AG",
    "plc",
    "B.V.",
    "SARL",
    "Pty Ltd",
    "Co.",
]
GENERIC_HEADS = [
    "National",
    "Global",
    "First",
    "United",
    "General",
    "American",
    "International",
    "Central",
]
GENERIC_TAILS = ["Group", "Holdings", "Partners", "Solutions", "Services", "Industries"]
COUNTRIES = ["US", "DE", "FR", "GB", "NL", "ES", "IT", "CA", "AU", "JP"]
COUNTRY_WORDS = {
    "DE": "Deutschland",
    "FR": "France",
    "GB": "UK",
    "NL": "Nederland",
    "ES": "Espana",
    "IT": "Italia",
    "CA": "Canada",
    "AU": "Australia",
    "JP": "Japan",
    "US": "USA",
}
ABBREVIATE = [
    ("International", "Intl."),
    ("and", "&"),
    ("Corporation", "Corp."),
    ("Company", "Co."),
    ("Technologies", "Tech"),
    ("Manufacturing", "Mfg."),
    ("Services", "Svcs."),
    ("Brothers", "Bros."),
    ("Saint", "St."),
]
CYRILLIC = dict(zip("abvgdezijklmnoprstufhcy", "абвгдезийклмнопрстуфхцы", strict=True))
GREEK = dict(zip("abgdezhiklmnxoprstufy", "αβγδεζηικλμνξοπρστυφυ", strict=True))


def _title(words: list[str]) -> str:
    return " ".join(w if w[:1].isupper() else w.capitalize() for w in words)


class Companies:
    def __init__(self, seed: int) -> None:
        self.pick = random.Random(seed)

    def company(self) -> tuple[list[str], str, str]:
        stem = self.pick.choice(STEMS)
        words = [stem.capitalize(), self.pick.choice(INDUSTRY)]
        if self.pick.random() < 0.3:
            words.insert(
                1,
                self.pick.choice(
                    [
                        "International",
                        "Technologies",
                        "Manufacturing",
                        "Services",
                        "Brothers",
                        "and Sons",
                    ]
                ),
            )
        domain = f"{stem}-{words[-1].lower()}.example"
        return words, domain, self.pick.choice(COUNTRIES)

    def form(self) -> str:
        return self.pick.choice(FORMS)

    def typo(self, word: str) -> str:
        at = self.pick.randrange(1, len(word) - 1)
        kind = self.pick.choice(["drop", "double", "swap", "replace"])
        if kind == "drop":
            return word[:at] + word[at + 1 :]
        if kind == "double":
            return word[:at] + word[at] + word[at:]
        if kind == "swap":
            return word[: at - 1] + word[at] + word[at - 1] + word[at + 1 :]
        letter = self.pick.choice("aeiourstnlm".replace(word[at].lower(), ""))
        return word[:at] + letter + word[at + 1 :]


def _script(word: str, table: dict[str, str]) -> str:
    return "".join(table.get(c, c) for c in word.lower())


def pairs(seed: int = 20) -> list[tuple[str, int, str, str, str, str, str, str]]:
    c = Companies(seed)
    out: list[tuple[str, int, str, str, str, str, str, str]] = []

    def add(variation: str, same: int, a: tuple[str, str, str], b: tuple[str, str, str]) -> None:
        out.append((variation, same, *a, *b))

    for _ in range(170):
        words, domain, country = c.company()
        add(
            "legal form",
            1,
            (f"{_title(words)} {c.form()}", domain, country),
            (f"{_title(words)} {c.form()}", c.pick.choice([domain, ""]), country),
        )
    for _ in range(170):
        words, domain, country = c.company()
        name = _title(words)
        a = name if c.pick.random() < 0.5 else f"{name} {c.form()}"
        if " and " not in a and "International" not in a:
            a = f"{words[0]} International {' '.join(words[1:])}"
        b = a
        for long, short in ABBREVIATE:
            b = re.sub(rf"\b{long}\b", short, b)
        if b == a:
            b = a.replace("International", "Intl")
        add("abbreviation", 1, (a, domain, country), (b, c.pick.choice([domain, ""]), country))
    for _ in range(220):
        words, domain, country = c.company()
        typo = [c.typo(words[0]), *words[1:]]
        add(
            "typo",
            1,
            (_title(words), domain, country),
            (_title(typo), c.pick.choice([domain, ""]), c.pick.choice([country, ""])),
        )
    for _ in range(120):
        words, domain, country = c.company()
        add(
            "case and punctuation",
            1,
            (f"{_title(words)} {c.form()}", domain, country),
            ("-".join(w.upper() for w in words) + ", " + c.form().upper(), "", country),
        )
    for _ in range(150):
        words, domain, country = c.company()
        there = c.pick.choice([k for k in COUNTRY_WORDS if k != country])
        add(
            "subsidiary",
            1,
            (f"{_title(words)} {c.form()}", domain, country),
            (f"{_title(words)} {COUNTRY_WORDS[there]} {c.form()}", domain, there),
        )
    for _ in range(120):
        words, domain, country = c.company()
        table = c.pick.choice([CYRILLIC, GREEK])
        add(
            "transliteration",
            1,
            (_title(words), domain, country),
            (" ".join(_script(w, table) for w in words), c.pick.choice([domain, ""]), country),
        )
    for _ in range(100):
        words, domain, country = c.company()
        add(
            "short and long form on one domain",
            1,
            (words[0].capitalize(), domain, ""),
            (f"{_title(words)} Holdings {c.form()}", domain, country),
        )
    for _ in range(60):
        stem = c.pick.choice(STEMS)
        spelled_out = [
            stem.capitalize(),
            c.pick.choice(INDUSTRY),
            c.pick.choice(["Group", "Partners", "Associates"]),
        ]
        domain = f"{stem}.example"
        add(
            "initials",
            1,
            ("".join(w[0] for w in spelled_out).upper(), domain, ""),
            (_title(spelled_out), domain, c.pick.choice(COUNTRIES)),
        )

    for _ in range(220):
        head, tail = c.pick.choice(GENERIC_HEADS), c.pick.choice(GENERIC_TAILS)
        one, two = c.pick.sample(INDUSTRY, 2)
        add(
            "generic words only in common",
            0,
            (
                f"{head} {one} {tail}",
                f"{head.lower()}-{one.lower()}.example",
                c.pick.choice(COUNTRIES),
            ),
            (
                f"{head} {two} {tail}",
                f"{head.lower()}-{two.lower()}.example",
                c.pick.choice(COUNTRIES),
            ),
        )
    for _ in range(200):
        words, domain, country = c.company()
        other = [c.typo(words[0]), *words[1:]]
        if other[0].lower() == words[0].lower():
            continue
        add(
            "a letter apart on different domains",
            0,
            (_title(words), domain, country),
            (
                _title(other),
                f"{other[0].lower()}-{words[-1].lower()}.example",
                c.pick.choice(COUNTRIES),
            ),
        )
    for _ in range(200):
        words, domain, country = c.company()
        industry = c.pick.choice([i for i in INDUSTRY if i != words[-1]])
        other = [*words[:-1], industry]
        add(
            "one name, two industries",
            0,
            (f"{_title(words)} {c.form()}", domain, country),
            (
                f"{_title(other)} {c.form()}",
                f"{words[0].lower()}-{industry.lower()}.example",
                country,
            ),
        )
    for _ in range(120):
        bank = c.pick.choice(
            ["First National Bank", "Citizens Bank", "Savings Bank", "Union Bank", "Farmers Bank"]
        )
        x, y = c.pick.sample(
            ["of Ohio", "of Texas", "of Oregon", "of Maine", "of Utah", "of Iowa", "of Idaho"], 2
        )
        add(
            "same-named banks of different states",
            0,
            (f"{bank} {x}", f"{bank.split()[0].lower()}{x.split()[1].lower()}.example", "US"),
            (f"{bank} {y}", f"{bank.split()[0].lower()}{y.split()[1].lower()}.example", "US"),
        )
    for _ in range(250):
        (wa, da, ca), (wb, db, cb) = c.company(), c.company()
        if wa[0] == wb[0]:
            continue
        add(
            "unrelated",
            0,
            (f"{_title(wa)} {c.form()}", da, ca),
            (f"{_title(wb)} {c.form()}", c.pick.choice([db, ""]), cb),
        )
    return out


def write(path: Path = PAIRS) -> int:
    rows = pairs()
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return len(rows)


def read(path: Path = PAIRS) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


if __name__ == "__main__":
    print(f"{write()} pairs written to {PAIRS}")
