"""Precision on real pages: every span the scrubber replaces, with a reviewer's verdict.

    .venv/bin/python bench/pii_review.py --todo    # print unreviewed spans (values shown: for the reviewer only)

Each replaced span gets a key (a hash of the page id, type and value; the value itself is never
written) and a verdict from `bench/results/pii_verdicts.json` ({key: ["tp"|"fp", why]}),
written by a person who read the span in its page. The table in bench/results/pii.md shows the
span's context with the value masked to its shape ("<phone 999/99999999>"), so that no value
lands in the repository. A span without a verdict counts as unreviewed, never as right.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not bench/: bench/tokenize.py would shadow the stdlib
VERDICTS = ROOT / "bench/results/pii_verdicts.json"

from filters.pii import TYPES, detect  # noqa: E402


def shape(value: str) -> str:
    return re.sub(r"[A-Za-z]", "a", re.sub(r"[0-9]", "9", value))


def masked(value: str, kind: str) -> str:
    if kind == "email":  # the shape of an address is its length: "a+@a+.aa"
        local, _, domain = value.partition("@")
        return f"<email {len(local)}@{len(domain)} chars .{domain.rsplit('.', 1)[-1]}>" if domain else "<email>"
    return f"<{kind} {shape(value)}>"


def span_key(doc_id: str, kind: str, value: str) -> str:
    return hashlib.sha256(f"{doc_id}\0{kind}\0{value}".encode()).hexdigest()[:16]


def spans(docs) -> list[dict]:
    """Every replaced span of every document: key, type, page, masked context."""
    out = []
    for d in docs:
        t = d.text
        for s, e, kind in detect(t, language=d.language, url=d.url):
            value = t[s:e]
            ctx = (t[max(0, s - 40):s] + masked(value, kind) + t[e:e + 40]).replace("\n", " ").replace("|", "/")
            out.append({"key": span_key(d.doc_id, kind, value), "type": kind, "doc": d.doc_id, "lang": d.language,
                        "context": ctx, "value": value, "raw": t[max(0, s - 60):e + 40]})
    return out


def load_verdicts() -> dict[str, list[str]]:
    return json.loads(VERDICTS.read_text(encoding="utf-8")) if VERDICTS.exists() else {}


def review_table(found: list[dict]) -> tuple[list[str], dict[str, Counter]]:
    """Markdown lines (summary, then one row per span) and per-type tp/fp/unreviewed counts."""
    verdicts = load_verdicts()
    per: dict[str, Counter] = {t: Counter() for t in TYPES}
    rows = []
    for sp in found:
        v = verdicts.get(sp["key"])
        verdict, why = (v[0], v[1]) if v else ("unreviewed", "")
        per[sp["type"]][verdict] += 1
        rows.append(f"| {sp['type']} | {sp['doc'][:38]} | {sp['lang']} | {sp['context']} | {verdict} | {why} |")
    lines = ["| type | replaced | true positives | false positives | unreviewed | precision |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for t, c in per.items():
        n = sum(c.values())
        judged = c["tp"] + c["fp"]
        prec = f"{c['tp'] / judged:.3f}" if judged else "n/a (none)"
        lines.append(f"| {t} | {n} | {c['tp']} | {c['fp']} | {c['unreviewed']} | {prec} |")
    lines += ["", "<details><summary>Every replaced span (value masked to its shape)</summary>", "",
              "| type | page | lang | context | verdict | why |", "| --- | --- | --- | --- | --- | --- |"]
    return lines + rows + ["", "</details>", ""], per


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--todo", action="store_true", help="print spans without a verdict, with their values")
    ap.add_argument("--cache", type=Path, help="JSON cache of the extracted pages (speeds up reruns)")
    args = ap.parse_args()
    from bench.pii_pages import real_docs

    found = spans(real_docs(990, args.cache))
    verdicts = load_verdicts()
    todo = [sp for sp in found if sp["key"] not in verdicts]
    if args.todo:
        for sp in todo:
            print(json.dumps({"key": sp["key"], "type": sp["type"], "doc": sp["doc"], "raw": sp["raw"]},
                             ensure_ascii=False))
    print(f"{len(found)} spans, {len(todo)} without a verdict", file=sys.stderr)


if __name__ == "__main__":
    main()
