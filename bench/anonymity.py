"""Anonymisation benchmark: what making a precedent's anonymised view costs against a large
directory, the per-precedent cost of `accord reindex-precedents` and migration 0023.

    python -m bench.anonymity --partners 2000 --precedents 5000

The directory is the demo's plus generated partners, each with two contacts; the precedents'
texts are the search benchmark's (bench.search.precedent_words), a party's contact named in them.
Reported: compiling the directory's names (once per directory, then cached), and p50/p95 of
anonymising one precedent's facts and rationale.
"""

from __future__ import annotations

import argparse
import random
import time
from decimal import Decimal

from accord.directory.demo import DEMO
from accord.precedents.anonymity import KnownPartner, Population, scrub_text
from bench.common import pct
from bench.search import precedent_words


def population(extra: int, k: int) -> Population:
    partners = [
        KnownPartner(
            p.id,
            p.name,
            p.tier.value,
            tuple(p.regions),
            tuple(p.email_domains),
            tuple(c.name for c in p.contacts),
        )
        for p in DEMO.partners
    ]
    partners += [
        KnownPartner(
            f"gen{i}",
            f"Generated{i} Systems GmbH",
            ("registered", "silver", "gold", "platinum")[i % 4],
            (("DACH", "UK-IE", "NA-East", "APJ")[i % 4],),
            (f"gen{i}.example",),
            (f"Anna Muster{i}", f"Jo Beispiel-Probe{i}"),
        )
        for i in range(extra)
    ]
    return Population(tuple(partners), k)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partners", type=int, default=2_000)
    parser.add_argument("--precedents", type=int, default=5_000)
    parser.add_argument("--k", type=int, default=3)
    args = parser.parse_args()
    directory = population(args.partners, args.k)
    parties = [
        {"partner_id": "woodgrove", "name": "Woodgrove Partners Ltd", "tier": "platinum"}
        | {"region": "UK-IE", "contacts": ["wendy.hale@woodgrove.example"]},
        {"partner_id": "contoso", "name": "Contoso Systems", "tier": "gold", "region": "NA-East"}
        | {"contacts": ["carl@contoso.example"]},
    ]
    started = time.perf_counter()
    names = directory.names(parties)
    compiled = time.perf_counter() - started
    rng = random.Random(15)
    texts = [precedent_words(i, rng) for i in range(args.precedents)]
    each: list[float] = []
    for facts, rationale in texts:
        started = time.perf_counter()
        scrub_text(f"{facts} Wendy Hale wrote.", names, ("DR-1",), Decimal(10_000))
        scrub_text(rationale, names, (), Decimal(10_000))
        each.append((time.perf_counter() - started) * 1000)
    print(
        f"{len(directory.partners)} partners: names compiled in {compiled * 1000:.0f} ms;"
        f" one precedent anonymised in p50 {pct(each, 50):.2f} ms, p95 {pct(each, 95):.2f} ms"
        f" ({args.precedents} precedents)"
    )


if __name__ == "__main__":
    main()
