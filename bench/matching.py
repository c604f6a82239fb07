"""Same-customer matching quality on the labelled set (issue 20, item 3: precision >= 0.95 at
recall >= 0.90), and the other detection kinds' rules on their labelled cases.

    python -m bench.matching

Reads tests/channel/labelled_pairs.csv (tests/channel/labelled_pairs.py says how it was made
and what that means for the figures). A pair is found when the two rows share a blocking key
(detection never compares others) and `compare` scores it SAME or above. Prints precision and
recall overall and recall by variation, and the score threshold's neighbours.
"""

from __future__ import annotations

import argparse
from collections import Counter

from accord.channel import matching
from accord.channel.matching import Customer, blocking_keys, compare
from bench.common import Goal, Report, add_arguments
from tests.channel.labelled_pairs import read


def customers(row: dict[str, str]) -> tuple[Customer, Customer]:
    a = Customer(row["name_a"], row["domain_a"] or None, None, row["country_a"] or None).keyed()
    b = Customer(row["name_b"], row["domain_b"] or None, None, row["country_b"] or None).keyed()
    return a, b


def scored(rows: list[dict[str, str]]) -> list[tuple[dict[str, str], bool, float]]:
    out = []
    for row in rows:
        a, b = customers(row)
        candidates = bool(blocking_keys(a) & blocking_keys(b))
        out.append((row, candidates, compare(a, b).score))
    return out


def quality(results: list[tuple[dict[str, str], bool, float]], at: float) -> tuple[float, float]:
    tp = sum(1 for r, c, s in results if c and s >= at and r["same"] == "1")
    fp = sum(1 for r, c, s in results if c and s >= at and r["same"] == "0")
    fn = sum(1 for r, c, s in results if not (c and s >= at) and r["same"] == "1")
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--show-misses", type=int, default=0, help="print this many misses")
    add_arguments(parser)
    args = parser.parse_args()
    report = Report("matching", args, label="same-customer matching (labelled set)")
    rows = read()
    results = scored(rows)
    positives = sum(1 for r in rows if r["same"] == "1")
    report.note(
        f"{len(rows):,} labelled pairs: {positives:,} same customer, {len(rows) - positives:,} not"
    )
    precision, recall = quality(results, matching.SAME)
    report.figure("same customer: precision", precision, "", Goal(at_least=0.95), digits=3)
    report.figure("same customer: recall", recall, "", Goal(at_least=0.90), digits=3)
    blocked = sum(1 for r, c, _ in results if r["same"] == "1" and not c)
    report.figure("same-customer pairs no blocking key brings together", blocked, "", digits=0)
    for threshold in (
        matching.SAME - 0.1,
        matching.SAME - 0.05,
        matching.SAME + 0.05,
        matching.SAME + 0.1,
    ):
        p, r = quality(results, threshold)
        report.note(f"  at a threshold of {threshold:.2f}: precision {p:.3f}, recall {r:.3f}")
    report.heading("by variation (share of its pairs judged right)")
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for row, candidates, score in results:
        found = candidates and score >= matching.SAME
        total[row["variation"]] += 1
        right[row["variation"]] += int(found == (row["same"] == "1"))
    for variation in total:
        report.figure(variation, right[variation] / total[variation], "", digits=3)
    misses = [
        (row, c, s) for row, c, s in results if (c and s >= matching.SAME) != (row["same"] == "1")
    ]
    for row, c, s in misses[: args.show_misses]:
        print(
            f"  miss {row['variation']}: {row['name_a']!r} {row['domain_a']} / {row['name_b']!r} {row['domain_b']}: blocked={c} score={s:.2f}"
        )
    report.finish()


if __name__ == "__main__":
    main()
