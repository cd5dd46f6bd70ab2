"""Recall and precision on the labelled PII sets (bench/pii_sets.py), per type, network and region.

    harness("fresh")             # counts for one part
    report(("heldout", "fresh"))  # markdown: per type per part, per network, per region side by side

A gold span is found when a detection of its type overlaps it; a detection that overlaps no gold
span of its type is a false positive. Phones are counted twice:
- all labels: every string the harness planted as a phone number;
- fair labels (the rule, `fair_phone`): only those libphonenumber calls a valid number when it
  parses them with the label's region as the default region. Faker writes some formats that are
  no number of that country (too few digits, "+11(9)...", area codes outside the plan); a scraper
  cannot tell those from other digits, and neither can a reader. The rule is the same for every
  part and every source (libphonenumber's own numbers are valid by construction). Under it, a
  detection that overlaps only excluded labels counts neither as right nor as wrong.
"""

from __future__ import annotations

import re
from collections import Counter

import phonenumbers

from filters.pii import TYPES, detect

TARGETS = {"email": (0.99, None), "credit_card": (0.99, None), "iban": (0.99, None),
           "national_id": (0.99, None), "phone": (0.95, 0.90), "ip": (1.0, None)}


def shape(value: str) -> str:
    """A value's shape ("99 99 99"), so that no value is printed, not even a synthetic one."""
    return re.sub(r"[A-Za-z]", "a", re.sub(r"[0-9]", "9", value))


def fair_phone(value: str, region: str) -> bool:
    """The label rule: libphonenumber parses `value` with `region` as default and finds it valid
    (in any region: Faker's en_US writes Canadian +1 numbers, which are phone numbers all the same)."""
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(value, region))
    except phonenumbers.NumberParseException:
        return False


def _overlaps(a: int, b: int, s: int, e: int) -> bool:
    return a < e and s < b


def miss_class(value: str, fair: bool) -> str:
    """What kind of phone label was missed (for the report; never the value)."""
    if not fair:
        return "not a valid number (the rule excludes it)"
    if any(ch.isdigit() and not "0" <= ch <= "9" for ch in value):  # Bengali, Arabic-Indic ... digits
        return "valid, in non-ASCII digits"
    return "valid, 4-6 digits" if len(re.sub(r"[^0-9]", "", value)) < 7 else "valid, 7+ digits"


def harness(split: str, detector=None) -> tuple[dict, dict, dict, Counter]:
    """Per type, per (type, label) and per look-alike kind counts on one part of bench/pii_sets.py.

    Counters: gold, found, detected, tp; for phones also fair_gold, fair_found, fair_detected, fair_tp,
    and "miss: <class>" per missed phone label (`miss_class`).
    `detector`: another `detect(text, language=, url=)` (an older scrubber), by default today's.
    """
    from bench.pii_sets import build

    detector = detector or detect

    per_type = {t: Counter() for t in TYPES}
    per_label: dict[tuple[str, str], Counter] = {}
    negatives: dict[str, Counter] = {}
    fp_shapes: Counter = Counter()
    for r in build(split):
        found = detector(r.text, language=r.language, url=r.url)
        fair = [t != "phone" or fair_phone(r.text[s:e], lb) for s, e, t, lb in r.spans]
        for (s, e, t, label), ok in zip(r.spans, fair, strict=True):
            hit = any(_overlaps(a, b, s, e) and k == t for a, b, k in found)
            for c in (per_type[t], per_label.setdefault((t, label), Counter())):
                c["gold"] += 1
                c["found"] += hit
                c["fair_gold"] += ok
                c["fair_found"] += ok and hit
            if t == "phone" and not hit:
                per_type[t]["miss: " + miss_class(r.text[s:e], ok)] += 1
        for a, b, k in found:
            mine = [ok for (s, e, t, _), ok in zip(r.spans, fair, strict=True) if t == k and _overlaps(a, b, s, e)]
            c = per_type[k]
            c["detected"] += 1
            c["tp"] += bool(mine)
            c["fair_detected"] += not mine or any(mine)  # not counted: overlaps excluded labels only
            c["fair_tp"] += any(mine)
            if not mine:
                fp_shapes[f"{k} {shape(r.text[a:b])}"] += 1
                for lb in {lb for s, e, t, lb in r.spans if t == k}:  # a false positive on a page of that label
                    per_label[(k, lb)]["fp"] += 1
        for s, e, kind in r.negatives:
            c = negatives.setdefault(kind, Counter())
            c["n"] += 1
            for a, b, k in found:
                c[k] += _overlaps(a, b, s, e)
    return per_type, per_label, negatives, fp_shapes


def rate(num: int, den: int) -> str:
    return f"{num / den:.3f}" if den else "n/a"


def met(t: str, rec: float, prec: float) -> str:
    r_t, p_t = TARGETS[t]
    return "yes" if rec >= r_t and (p_t is None or prec >= p_t) else "**no**"


def type_table(per_type: dict, targets: bool) -> list[str]:
    out = ["| type | gold | found | recall | detections | precision | target | met |",
           "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    rows = [(t, c, "") for t, c in per_type.items() if t in TARGETS]  # no secrets are planted
    rows.insert(2, ("phone", per_type["phone"], "fair_"))
    for t, c, f in rows:
        g, fd, d, tp = c[f + "gold"], c[f + "found"], c[f + "detected"], c[f + "tp"]
        r_t, p_t = TARGETS[t]
        target = f"R>={r_t}" + (f", P>={p_t}" if p_t else "")
        ok = met(t, fd / g if g else 0.0, tp / d if d else 1.0)
        name = f"{t}, fair labels only" if f else t
        out.append(f"| {name} | {g} | {fd} | {rate(fd, g)} | {d} | {rate(tp, d)} | {target if targets else ''} "
                   f"| {ok if targets else ''} |")
    return out


def report(parts: tuple[str, ...]) -> tuple[list[str], dict[str, dict]]:
    """Markdown for `parts` (per type per part, look-alikes, per network, per region) and the counts."""
    res = {p: harness(p) for p in parts}
    out = []
    for p in parts:
        per_type, _, negatives, fp_shapes = res[p]
        out += [f"### Part `{p}`", ""] + type_table(per_type, targets=True)
        misses = sorted((k[6:], v) for k, v in per_type["phone"].items() if k.startswith("miss: "))
        out += ["", "Phone labels missed, by kind: " + "; ".join(f"{k}: {v}" for k, v in misses)]
        if fp_shapes:
            out += ["", "False positives by shape: " + ", ".join(f"`{k}` x{v}" for k, v in fp_shapes.most_common())]
        hits = {kind: ", ".join(f"{k} {v}" for k, v in c.items() if k != "n" and v) or "none"
                for kind, c in negatives.items()}
        out += ["", "Look-alikes that must survive (60 each): " + "; ".join(f"{k}: {v}" for k, v in hits.items()), ""]
    head = " | ".join(f"{p} gold | {p} recall" for p in parts)
    out += ["### Recall per card network", "", f"| network | {head} |", "| --- |" + " ---: |" * 2 * len(parts)]
    nets = sorted({lb for p in parts for (t, lb) in res[p][1] if t == "credit_card"})
    for lb in nets:
        cells = [res[p][1].get(("credit_card", lb), Counter()) for p in parts]
        out.append(f"| {lb} | " + " | ".join(f"{c['gold']} | {rate(c['found'], c['gold'])}" for c in cells) + " |")
    head = " | ".join(f"{p}: gold, found, recall | {p} fair: gold, recall" for p in parts)
    out += ["", "### Recall per phone region (ISO 3166; libphonenumber + Faker)", "",
            "`fair`: labels that pass the rule (see the notes); `fp`: false positives on pages of that region, "
            "all parts.", "", f"| region | {head} | fp |", "| --- |" + " ---: |" * (2 * len(parts) + 1)]
    regions = sorted({lb for p in parts for (t, lb) in res[p][1] if t == "phone"})
    for lb in regions:
        cells = [res[p][1].get(("phone", lb), Counter()) for p in parts]
        out.append(f"| {lb} | " + " | ".join(
            f"{c['gold']}, {c['found']}, {rate(c['found'], c['gold'])} | {c['fair_gold']}, "
            f"{rate(c['fair_found'], c['fair_gold'])}" for c in cells) + f" | {sum(c['fp'] for c in cells)} |")
    return out + [""], res
