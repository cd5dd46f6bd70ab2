"""Labelled PII sets built offline from what PyPI packages ship, deterministic, in two parts.

    build("tune")     # the part the patterns and rules were chosen on
    build("heldout")  # the part they are measured on (bench/pii.py reports this one)

A record is a short web-page-like text with the `language` and `url` the PII stage would see,
gold `spans` (start, end, type, label) where label is the card network or the phone's region,
and `negatives` (start, end, kind): numbers that are not PII but look like it (order, tracking,
article and IMEI numbers, ISBNs and EANs, timestamps, dates, prices), for precision.

Where the values come from:
- cards: Faker's `credit_card_number(card_type=...)` for each of its 12 types (Visa 13/16/19,
  Mastercard incl. 2-series, Amex, Discover, Diners, JCB 15 and 16, Maestro 12); for networks
  and lengths Faker lacks (Mir, UnionPay, RuPay, Troy, Verve, Elo, Hipercard, Dankort, Maestro
  13-19, JCB 17-19, Discover 19, Diners 3095) numbers are drawn from `EXTRA_NETWORKS` below,
  copied from the networks' published IIN ranges, with a Luhn check digit. Typed bare, in
  groups of 4 with spaces or dashes, or 4-6-5.
- phones: for every region libphonenumber knows, its example fixed-line and mobile numbers
  with the last digits redrawn until valid, written in NATIONAL, INTERNATIONAL or E164 format;
  and Faker's `phone_number()` for its locales (their own, sometimes odd, formats). The page's
  hint is one of: its country TLD and language, only its language (a .com URL), or only a
  "+CC" elsewhere on the page (an English .com page). A page's language for a region is
  CLDR's (Babel) first official language there.
- e-mail, IBAN, SSN, public IPv4/IPv6: Faker, across locales.

The parts differ in seeds, in sentence templates (bench/pii_templates.py), and in the Faker
locales used for phones (sorted locales, alternating), so that held-out phones include formats of
locales never seen while tuning. "fresh" (issue 14, second round) has its own seeds and templates,
written before any result on it was seen, and the heldout half of the locales (there are no
others); "heldout" was looked at while the rules were written, "fresh" is measured only.

    build("fresh")    # measured only
"""

from __future__ import annotations

import ipaddress
import random
import re
from dataclasses import dataclass, field

import phonenumbers
from babel.languages import get_official_languages
from faker import Faker

from bench.pii_templates import HEADS, NEGATIVE_TEMPLATES, TEMPLATES

SPLITS = ("tune", "heldout", "fresh")
# Which half of Faker's phone locales (sorted, alternating) a part uses. Faker 40 has 72 locales
# with phone formats of their own (the other locales it accepts fall back to en_US's formats), all
# split between tune and heldout, so "fresh" draws new numbers from the half never tuned on.
LOCALE_HALF = {"tune": 0, "heldout": 1, "fresh": 1}
FAKER_CARDS = ["visa13", "visa16", "visa19", "mastercard", "amex", "discover", "diners", "jcb15", "jcb16",
               "maestro"]
# network -> ([prefix or lo-hi], [lengths]); published IIN ranges for networks Faker lacks.
EXTRA_NETWORKS = {
    "mir": (["2200-2204"], [16, 19]), "unionpay": (["62", "81"], [16, 17, 18, 19]),
    "rupay": (["60", "65", "81", "82", "508"], [16]), "troy": (["9792", "65"], [16]),
    "verve": (["506099-506198", "650002-650027"], [16, 19]), "elo": (["401178", "438935", "504175",
              "506699-506778", "509000-509999", "636368", "650031-650033"], [16]),
    "hipercard": (["606282", "3841"], [16, 19]), "dankort": (["5019"], [16]),
    "maestro_13_19": (["5018", "5020", "5038", "5893", "6304", "6759", "6761-6763"], [13, 15, 16, 18, 19]),
    "jcb_17_19": (["3528-3589"], [17, 18, 19]), "discover_19": (["6011", "644-649", "65"], [19]),
    "diners_3095": (["3095", "39"], [14, 16]), "jcb_35xx_unissued": (["3500-3527", "3590-3599"], [16]),
}
GENERIC_URLS = ["https://www.example.com/contact", "https://shop.example.net/impressum", "https://blog.example.org/p/2"]

@dataclass
class Record:
    text: str
    language: str | None
    url: str | None
    spans: list[tuple[int, int, str, str]] = field(default_factory=list)   # start, end, type, label
    negatives: list[tuple[int, int, str]] = field(default_factory=list)    # start, end, kind


def luhn_complete(body: str) -> str:
    """`body` plus the check digit that makes it Luhn-valid."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (1 if i % 2 else 2)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def draw_card(rng: random.Random, prefixes: list[str], lengths: list[int]) -> str:
    p = rng.choice(prefixes)
    lo, _, hi = p.partition("-")
    prefix = str(rng.randint(int(lo), int(hi or lo))).zfill(len(lo))
    n = rng.choice(lengths)
    return luhn_complete(prefix + "".join(rng.choice("0123456789") for _ in range(n - len(prefix) - 1)))


def type_card(rng: random.Random, digits: str) -> str:
    """As people type it: bare, groups of 4 (space or dash), or 4-6-5 for 15 digits."""
    r = rng.random()
    if r < 0.4:
        return digits
    if len(digits) == 15 and r < 0.55:
        return f"{digits[:4]} {digits[4:10]} {digits[10:]}"
    sep = " " if r < 0.8 else "-"
    return sep.join(digits[i:i + 4] for i in range(0, len(digits), 4))


def region_language(region: str) -> str:
    langs = get_official_languages(region, de_facto=True)
    return langs[0].split("_")[0] if langs else "en"


def _sentence(rng: random.Random, split: str, kind: str, lang: str) -> str:
    table = TEMPLATES[split][kind]
    return rng.choice(table.get(lang) or table["en"])


def _record(template: str, value: str, kind: str, label: str, lang: str | None, url: str | None) -> Record:
    i = template.index("{}")
    return Record(template.replace("{}", value, 1), lang, url, [(i, i + len(value), kind, label)])


def _phone_variants(rng: random.Random, region: str, kind: int, n: int) -> list[phonenumbers.PhoneNumber]:
    ex = phonenumbers.example_number_for_type(region, kind)
    if ex is None:
        return []
    out, nat = [], str(ex.national_number)
    for _ in range(40 * n):
        k = min(3, len(nat) - 2)
        cand = nat[:-k] + "".join(rng.choice("0123456789") for _ in range(k))
        num = phonenumbers.parse("+" + str(ex.country_code) + cand)
        if phonenumbers.is_valid_number(num) and phonenumbers.region_code_for_number(num) == region:
            out.append(num)
            if len(out) == n:
                break
    return out


def phone_records(split: str, per_type: int = 2) -> list[Record]:
    rng = random.Random(f"phones-{split}")
    fmts = [phonenumbers.PhoneNumberFormat.NATIONAL] * 6 + [phonenumbers.PhoneNumberFormat.INTERNATIONAL] * 3 \
        + [phonenumbers.PhoneNumberFormat.E164]
    out = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        lang = region_language(region)
        tld = "uk" if region == "GB" else region.lower()
        for kind in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE):
            for num in _phone_variants(rng, region, kind, per_type):
                value = phonenumbers.format_number(num, rng.choice(fmts))
                hint = rng.random()
                if hint < 0.5:
                    out.append(_record(_sentence(rng, split, "phone", lang), value, "phone", region, lang,
                                       f"https://www.example.{tld}/"))
                elif hint < 0.75:
                    out.append(_record(_sentence(rng, split, "phone", lang), value, "phone", region, lang,
                                       rng.choice(GENERIC_URLS)))
                else:  # only a "+CC" elsewhere on an English .com page gives the country away
                    rec = _record(_sentence(rng, split, "phone", "en"), value, "phone", region, "en",
                                  rng.choice(GENERIC_URLS))
                    other = _phone_variants(rng, region, kind, 1)
                    if other:
                        intl = phonenumbers.format_number(other[0], phonenumbers.PhoneNumberFormat.INTERNATIONAL)
                        head = HEADS[split].format(intl)
                        at = HEADS[split].index("{}")
                        rec = Record(head + rec.text, "en", rec.url, [(at, at + len(intl), "phone", region)]
                                     + [(s + len(head), e + len(head), t, lb) for s, e, t, lb in rec.spans])
                    out.append(rec)
    return out


def faker_phone_records(split: str, per_locale: int = 6) -> list[Record]:
    from pathlib import Path

    import faker.providers.phone_number as pn

    locales = sorted(p.name for p in Path(pn.__file__).parent.iterdir() if re.fullmatch(r"[a-z]{2,3}_[A-Z]{2}", p.name))
    mine = locales[LOCALE_HALF[split]::2]
    out = []
    for i, loc in enumerate(mine):
        fk = Faker(loc)
        if not hasattr(fk, "phone_number"):  # a locale folder Faker itself cannot load as a locale
            continue
        fk.seed_instance(1000 * SPLITS.index(split) + i)
        rng = random.Random(f"faker-phones-{split}-{loc}")
        lang, region = loc.split("_")
        tld = "uk" if region == "GB" else region.lower()
        for _ in range(per_locale):
            url = f"https://www.example.{tld}/" if rng.random() < 0.5 else rng.choice(GENERIC_URLS)
            out.append(_record(_sentence(rng, split, "phone", lang), fk.phone_number(), "phone", region, lang, url))
    return out


def card_records(split: str, per_network: int = 40) -> list[Record]:
    rng = random.Random(f"cards-{split}")
    fk = Faker("en_US")
    fk.seed_instance(SPLITS.index(split))
    out = []
    networks: list[tuple[str, object]] = [(n, None) for n in FAKER_CARDS] + list(EXTRA_NETWORKS.items())
    for name, spec in networks:
        for _ in range(per_network):
            digits = fk.credit_card_number(card_type=name) if spec is None else draw_card(rng, *spec)
            lang = rng.choice(["en", "en", "de", "fr", "es", "pt"])
            out.append(_record(_sentence(rng, split, "card", lang), type_card(rng, digits), "credit_card", name,
                               lang, rng.choice(GENERIC_URLS)))
    return out


def other_records(split: str, n: int = 100) -> list[Record]:
    rng = random.Random(f"other-{split}")
    locales = ["en_US", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL", "pt_PT", "en_GB"]
    fakers = {loc: Faker(loc) for loc in locales}
    for i, f in enumerate(fakers.values()):
        f.seed_instance(100 * SPLITS.index(split) + i)
    out = []
    for _ in range(n):
        loc = rng.choice(locales)
        f, lang = fakers[loc], loc[:2]
        email = rng.choice([f.email, f.free_email, f.company_email])()
        iban = f.iban()
        if rng.random() < 0.5:
            iban = " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))
        ip = f.ipv4_public() if rng.random() < 0.6 else None
        while ip is None:
            v6 = ipaddress.IPv6Address(f.ipv6())
            ip = str(v6) if v6.is_global and not v6.is_multicast else None
        for kind, value, label in (("email", email, loc), ("iban", iban, iban[:2]),
                                   ("ssn", fakers["en_US"].ssn(), "US"), ("ip", ip, "v6" if ":" in ip else "v4")):
            out.append(_record(_sentence(rng, split, kind, lang), value, "national_id" if kind == "ssn" else kind,
                               label, lang, rng.choice(GENERIC_URLS)))
    return out


def _negative_value(rng: random.Random, kind: str) -> str:
    digits = lambda n: str(rng.randint(1, 9)) + "".join(rng.choice("0123456789") for _ in range(n - 1))  # noqa: E731
    if kind == "order_number":  # half forced Luhn-valid with a card prefix: the by-chance look-alikes
        n = rng.randint(12, 19)
        return luhn_complete(rng.choice(["4", "51", "62", "35", "60"]) + digits(n)[:n - 3]) \
            if rng.random() < 0.5 else digits(n)
    if kind == "tracking_number":
        return rng.choice([
            lambda: "1Z" + "".join(rng.choice("0123456789ABCDEFGHJKLMNPRSTVWXYZ") for _ in range(16)),
            lambda: digits(12), lambda: digits(15), lambda: digits(20),
            lambda: " ".join(("9400" + digits(18))[i:i + 4] for i in range(0, 22, 4)),
            lambda: luhn_complete("4" + digits(15)[:14])])()
    if kind == "isbn":
        body = rng.choice(["978", "979"]) + digits(9)
        check = (10 - sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(body)) % 10) % 10
        full = body + str(check)
        return full if rng.random() < 0.5 else f"{full[:3]}-{full[3]}-{full[4:7]}-{full[7:12]}-{full[12]}"
    if kind == "ean":
        body = str(rng.randint(400, 440)) + digits(9)
        return body + str((10 - sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(body)) % 10) % 10)
    if kind == "imei":
        return luhn_complete("35" + digits(12))
    if kind == "timestamp":
        t = rng.randint(1_500_000_000, 1_800_000_000)
        return rng.choice([str(t), str(t * 1000 + rng.randint(0, 999)), str(t * 10**6 + rng.randint(0, 10**6 - 1)),
                           str(t * 10**9 + rng.randint(0, 10**9 - 1)),
                           f"20{rng.randint(10, 29)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
                           f"{rng.randint(0, 23):02d}{rng.randint(0, 59):02d}{rng.randint(0, 59):02d}"])
    return rng.choice([digits(rng.randint(6, 13)), f"{digits(3)}-{digits(5)}", f"{digits(2)}.{digits(3)}.{digits(2)}"])


def negative_records(split: str, per_kind: int = 60) -> list[Record]:
    rng = random.Random(f"negatives-{split}")
    out = []
    for kind, templates in NEGATIVE_TEMPLATES.items():
        for _ in range(per_kind):
            t, v = rng.choice(templates), _negative_value(rng, kind)
            i = t.index("{}")
            out.append(Record(t.replace("{}", v, 1), rng.choice(["en", "de", "zh"]), rng.choice(GENERIC_URLS),
                              negatives=[(i, i + len(v), kind)]))
    return out


def build(split: str) -> list[Record]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return (card_records(split) + phone_records(split) + faker_phone_records(split) + other_records(split)
            + negative_records(split))
