"""PII scrubbing: e-mails, phones, public IPs, payment cards, IBANs, national IDs and secrets.

Each detector is a precompiled regex that finds candidates cheaply (patterns start with a
character class or a literal, so the regex engine skips ahead; rare types sit behind a
substring gate), then a validator rejects what is not PII: Luhn, issuer ranges and context
for cards (filters/pii_cards.py), mod-97 and the country length for IBANs, the never-issued
SSN areas, the GB 11643 check character of Chinese resident IDs, `ipaddress` for public
addresses, Shannon entropy for `api_key=...` values, libphonenumber for phone numbers in the
regions the document plausibly comes from (filters/pii_phones.py: URL TLD, "+CC" in the page,
langid's language). Dates, times, prices, versions, ISBNs, order and tracking numbers, page
ranges and table rows survive (tests/test_pii.py).

Judgement calls (bench/results/pii.md measures them):
- IPs: public addresses only (`is_global`, not multicast): 192.168.0.1 in a router manual
  is not PII. A dotted quad after "version"/"build"/"firmware"/"v." is a version; one with
  all four parts below 10 (1.2.3.4, 8.8.8.8) is a version or a public resolver, not a
  person. IPv6 in IETF-unallocated space is public for `ipaddress`, and so for us.
- Phones and cards: see their modules' docstrings.
- Spans never overlap: detectors run in priority order (a PEM block beats the numbers in
  it, an e-mail the digits of its local part, an IBAN or an ID the card its digits spell).

Matched values are never logged. "fake" mode replaces a value with a fake of the same type
and shape from an HMAC of the value: the key comes from the environment (`fake_key_env`),
so it never lands in the manifest's config JSON and every worker of a run agrees on it.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import hmac
import ipaddress
import logging
import math
import os
import re
from collections import Counter
from typing import Callable, ClassVar

import pyarrow as pa

from filters.pii_cards import find_cards, luhn_ok
from filters.pii_phones import find_phones, plausible_country_codes
from pipeline.document import Document
from pipeline.registry import register_stage
from pipeline.stage import Stage

log = logging.getLogger(__name__)

TYPES = ("email", "phone", "ip", "credit_card", "iban", "national_id", "secret")
PLACEHOLDERS = {"email": "<EMAIL>", "phone": "<PHONE>", "ip": "<IP_ADDRESS>", "credit_card": "<CREDIT_CARD>",
                "iban": "<IBAN>", "national_id": "<NATIONAL_ID>", "secret": "<SECRET>"}
MODES = ("placeholder", "fake")


@dataclasses.dataclass(frozen=True)
class PiiConfig:
    # "placeholder": typed tags like <EMAIL>; "fake": a same-shape fake, consistent per value.
    mode: str = "placeholder"
    types: tuple[str, ...] = TYPES
    # Environment variable with the HMAC key for "fake" mode. Unset: a random key per process
    # (fakes are then consistent within one worker only; a warning says so).
    fake_key_env: str = "GRISTMILL_PII_KEY"
    # Bits per character a `token=...` value needs to be a secret: random hex or base64 keys of
    # 16+ characters score 3.6-5.5; words and identifiers lower.
    secret_min_entropy: float = 3.5

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {self.mode!r}")
        unknown = sorted(set(self.types) - set(TYPES))
        if unknown:
            raise ValueError(f"unknown PII type(s) {unknown}; valid types: {list(TYPES)}")
        if not self.types:
            raise ValueError(f"types is empty: list some of {list(TYPES)}, "
                             "or remove 'pii' from [pipeline] stages")
        if len(set(self.types)) != len(self.types):
            raise ValueError(f"types lists a type twice: {list(self.types)}")
        if not 0.0 <= self.secret_min_entropy <= 8.0:
            raise ValueError(f"secret_min_entropy is in bits per character, within [0, 8]; "
                             f"got {self.secret_min_entropy}")
        if self.mode == "fake" and not self.fake_key_env:
            raise ValueError("fake mode needs fake_key_env: the name of the variable holding the HMAC key")


# ---------------------------------------------------------------- detectors: text -> [(start, end)]
# Boundaries are ASCII classes, not \w or \b: Chinese text glues values to its characters.
Span = tuple[int, int]
_E = r"(?![A-Za-z0-9_])"

# Not "icon@2x.png": a file extension is no top-level domain.
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
                    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                    r"(?!(?:png|jpe?g|gif|svg|webp)(?![A-Za-z]))[A-Za-z]{2,24}(?![A-Za-z0-9-])")
# "jane (at) example [dot] com": bracketed at/dot only, a bare " at " is English.
_OBF_AT = re.compile(r"[\[({<]\s*at\s*[\])}>]", re.I)
_EMAIL_OBF = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}\s*[\[({<]\s*at\s*[\])}>]\s*"
                        r"[A-Za-z0-9-]+(?:\s*(?:\.|[\[({<]\s*dot\s*[\])}>])\s*[A-Za-z0-9-]+)+", re.I)


def find_emails(text: str) -> list[Span]:
    spans = [m.span() for m in _EMAIL.finditer(text)] if "@" in text else []
    if _OBF_AT.search(text):
        spans += [m.span() for m in _EMAIL_OBF.finditer(text)]
    return spans


_SECRETS = [  # (substring gate, pattern)
    # A PEM block up to its END line; a truncated one up to the end of its base64 lines.
    ("-----BEGIN", re.compile(r"-----BEGIN[A-Z ]{0,30}PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]{0,20000}?-----END"
                              r"[A-Z ]{0,30}PRIVATE KEY(?: BLOCK)?-----|(?:\s*(?:[A-Za-z0-9+/=]{16,}|"
                              r"(?:Proc-Type|DEK-Info):.*))*)")),
    ("A", re.compile(r"A(?<![A-Za-z0-9_]A)(?:KIA|SIA|BIA|CCA)[0-9A-Z]{16}" + _E)),  # AWS access key ids
    ("_", re.compile(r"g(?<![A-Za-z0-9_]g)(?:h[pousr]_[A-Za-z0-9]{36,255}|ithub_pat_[A-Za-z0-9_]{22,255})"
                     + _E)),  # GitHub tokens
    ("xox", re.compile(r"x(?<![A-Za-z0-9_]x)ox[abposr]-[A-Za-z0-9-]{10,250}" + _E)),  # Slack tokens
]
# `api_key = "..."`, `"client_secret": "..."`, `token: ...`: only the value (group 1) goes. The
# value is found first, then the key before it: a case-insensitive keyword scan costs 10x more.
_ASSIGN = re.compile(r"[=:]>?\s*[\"']?([A-Za-z0-9_\-+/=.~]{16,512})")
_ASSIGN_KEY = re.compile(r"(?i)(?<![A-Za-z0-9])(?:api[_-]?key|apikey|secret|token|passw(?:or)?d|"
                         r"private[_-]?key|access[_-]?key)[A-Za-z0-9_.-]{0,24}[\"']?\s*$")
# Two or more word-like parts ("my_secret_value_2024", "AutoTokenizer.from_pretrained"): an
# identifier, however high its character entropy.
_WORDY = re.compile(r"(?:^|[_.-])(?:[a-z]{3,}|[A-Z]{3,})(?=$|[_.-])")


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def find_secrets(text: str, min_entropy: float = 3.5) -> list[Span]:
    spans = [m.span() for gate, rx in _SECRETS if gate in text for m in rx.finditer(text)]
    for m in _ASSIGN.finditer(text):
        v = m.group(1)
        if (_ASSIGN_KEY.search(text, max(0, m.start() - 48), m.start()) and re.search(r"[0-9]", v)
                and re.search(r"[A-Za-z]", v) and len(_WORDY.findall(v)) < 2 and entropy(v) >= min_entropy):
            spans.append(m.span(1))
    return spans


# ISO 13616 IBAN length per country (SWIFT IBAN registry).
_IBAN_LEN = {c[:2]: int(c[2:]) for c in (
    "AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BI27 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 DJ27 DK18 DO28 "
    "EE20 EG29 ES24 FI18 FK18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HR21 HU28 IE22 IL23 IQ23 IS26 IT27 "
    "JO30 KW30 KZ20 LB28 LC32 LI21 LT20 LU20 LV21 LY25 MC27 MD24 ME22 MK19 MN20 MR27 MT31 MU30 NI28 NL18 "
    "NO15 OM23 PK24 PL28 PS29 PT25 QA29 RO24 RS22 RU33 SA24 SC31 SD18 SE24 SI19 SK24 SM27 SO23 ST25 SV28 "
    "TL23 TN24 TR26 UA29 VA22 VG24 XK20 YE30").split()}
# Starts at the check digits (a digit class lets the engine skip ahead) and looks back for the country.
_IBAN = re.compile(r"[0-9]{2}(?<=(?<![A-Za-z0-9_])[A-Za-z]{2}[0-9]{2})(?: ?[A-Za-z0-9]){11,30}")


def _mod97(s: str) -> int:
    return int("".join(str(int(ch, 36)) for ch in s)) % 97


def iban_ok(compact: str) -> bool:
    s = compact.upper()
    return _IBAN_LEN.get(s[:2]) == len(s) and _mod97(s[4:] + s[:4]) == 1


def find_ibans(text: str) -> list[Span]:
    spans = []
    for m in _IBAN.finditer(text):
        start = m.start() - 2
        want = _IBAN_LEN.get(text[start:m.start()].upper())
        if want is None:
            continue
        end, k = start, 0  # the regex may run on into the next word ("... 32 and"): cut at the length
        while k < want and end < m.end():
            k += text[end] != " "
            end += 1
        glued = end < len(text) and text[end].isalnum()
        if k == want and not glued and iban_ok(text[start:end].replace(" ", "")):
            spans.append((start, end))
    return spans


# US SSNs with dashes ("680 36 4022" is as often a suite and a street number), not after a
# "+81 " country code; areas 000, 666 and 9xx, group 00 and serial 0000 are never issued.
_SSN_GATE = re.compile(r"-[0-9]{2}-")
_SSN = re.compile(r"[0-8](?<![A-Za-z0-9_-][0-8])(?<!\+[0-9] [0-8])(?<!\+[0-9]{2} [0-8])(?<!\+[0-9]{3} [0-8])"
                  r"[0-9]{2}-(?!00)[0-9]{2}-(?!0000)[0-9]{4}(?![A-Za-z0-9_-])")
_SSN_BARE = re.compile(r"(?i)(?:ssn|social security(?: number| no\.?)?)\W{0,5}"
                       r"((?!000|666|9)[0-9]{3}(?!00)[0-9]{2}(?!0000)[0-9]{4})" + _E)
# Chinese resident ID: 6-digit region, birth date, 3-digit sequence, check character.
_CN_ID = re.compile(r"[1-9](?<![0-9A-Za-z][1-9])[0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])"
                    r"(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx](?![0-9A-Za-z])")
_CN_PROVINCES = {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51,
                 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83, 91}
_CN_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_CHECK = "10X98765432"


def cn_id_check(first17: str) -> str:
    """GB 11643-1999 check character (ISO 7064 MOD 11-2)."""
    return _CN_CHECK[sum(int(c) * w for c, w in zip(first17, _CN_WEIGHTS)) % 11]


def find_national_ids(text: str) -> list[Span]:
    spans = [m.span() for m in _CN_ID.finditer(text)
             if int(m.group()[:2]) in _CN_PROVINCES and cn_id_check(m.group()[:17]) == m.group()[17].upper()]
    if _SSN_GATE.search(text):
        spans += [m.span() for m in _SSN.finditer(text) if m.group()[:3] not in ("000", "666")]
    low = text.lower()
    if "ssn" in low or "social security" in low:
        spans += [m.span(1) for m in _SSN_BARE.finditer(text)]
    return spans


_IPV4 = re.compile(r"[0-9](?<![A-Za-z0-9_.][0-9])[0-9]{0,2}(?:\.[0-9]{1,3}){3}(?![A-Za-z0-9_]|\.[0-9])")
_IPV6_GATE = re.compile(r":[0-9A-Fa-f]{0,4}:")
_IPV6 = re.compile(r"(?<![A-Za-z0-9_:.])(?=[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:)[0-9A-Fa-f:]{2,39}"
                   r"(?:(?<=:)[0-9]{1,3}(?:\.[0-9]{1,3}){3})?(?![A-Za-z0-9_:]|\.[0-9])")
_VERSION_CUE = re.compile(r"(?i)(?:version|ver\.?|release|build|firmware|v\.|版本)\s*:?\s*$")


def ip_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def find_ips(text: str) -> list[Span]:
    spans = []
    for m in _IPV4.finditer(text):
        if len(m.group()) == 7 or _VERSION_CUE.search(text, max(0, m.start() - 16), m.start()):
            continue  # 1.2.3.4, 8.8.8.8 (all parts < 10) and "version 10.2.1.5"
        try:
            if ip_public(ipaddress.IPv4Address(m.group())):
                spans.append(m.span())
        except ValueError:  # a part over 255 or a leading zero: the regex leaves that to ipaddress
            continue
    if _IPV6_GATE.search(text):
        for m in _IPV6.finditer(text):
            if len([g for g in m.group().split(":") if g]) < 3:
                continue  # "a::b" in code, "12:30::"
            try:
                ip = ipaddress.IPv6Address(m.group())
            except ValueError:  # times, C++ scopes, MAC addresses
                continue
            # ::/16 holds no real host; it is where an EUI-64-like "00:1a:2b:ff:fe:3c:4d:5e" lands.
            if (ip.ipv4_mapped is not None or int(ip) >> 112) and ip_public(ip):
                spans.append(m.span())
    return spans


# ---------------------------------------------------------------- fakes
def _reshape(value: str, rnd: bytes, keep: int = 0) -> str:
    """Same shape: digit -> digit, letter -> letter of the same case, the rest and value[:keep] kept."""
    out = list(value)
    for i in range(keep, len(value)):
        ch, b = value[i], rnd[i % len(rnd)]
        if "0" <= ch <= "9":
            out[i] = str(b % 10)
        elif "a" <= ch <= "z":
            out[i] = chr(97 + b % 26)
        elif "A" <= ch <= "Z":
            out[i] = chr(65 + b % 26)
    return "".join(out)


def _fake_one(kind: str, value: str, r: bytes) -> str:
    # Fakes keep the shape but can never be a real person's value: reserved domains and
    # documentation IP ranges, SSN area 666, a wrong check digit for cards, IBANs and Chinese
    # IDs (so a rerun of the scrubber does not count them either). Phones keep their prefix.
    if kind == "email":
        local = value.split("@")[0] if "@" in value else re.split(r"\s*[\[({<]", value)[0]
        return f"{_reshape(local, r)}@example.{('com', 'org', 'net')[r[-1] % 3]}"
    if kind == "ip":
        if ":" in value:
            return str(ipaddress.IPv6Address(b"\x20\x01\x0d\xb8" + r[:12]))  # 2001:db8::/32
        return f"{('192.0.2', '198.51.100', '203.0.113')[r[0] % 3]}.{r[1]}"  # TEST-NET-1/2/3
    if kind == "phone":  # country code, trunk 0 or a Chinese mobile's "1[3-9]" kept
        prefix = re.match(r"\+[0-9]{1,3}[ -]?|00[0-9]{1,3}[ -]?|\(?0|1[3-9]?", value)
        return _reshape(value, r, prefix.end() if prefix else 0)
    if kind == "credit_card":  # the network's first digit kept
        fake = _reshape(value, r, 1)
        i = max(i for i, ch in enumerate(fake) if ch.isdigit())
        good = next(d for d in range(10) if luhn_ok(re.sub(r"[^0-9]", "", fake[:i]) + str(d)))
        return fake[:i] + str((good + 1) % 10) + fake[i + 1:]
    if kind == "iban":  # country kept; check digits one off the valid ones, so mod 97 gives 0 or 2
        fake = _reshape(value, r, 4)
        compact = fake.replace(" ", "").upper()
        check = 98 - _mod97(compact[4:] + compact[:2] + "00")
        return fake[:2] + f"{check + 1 if check < 98 else 97:02d}" + fake[4:]
    if kind == "national_id":
        if len(value) == 18:  # Chinese ID: province kept, a valid birth date, a wrong check character
            body = (value[:2] + _reshape(value[2:6], r) + f"{1950 + r[0] % 55}{1 + r[1] % 12:02d}"
                    f"{1 + r[2] % 28:02d}" + _reshape(value[14:17], r[3:]))
            return body + _CN_CHECK[(_CN_CHECK.index(cn_id_check(body)) + 1) % 11]
        return "666" + _reshape(value[3:], r)
    pem = re.match(r"(-----BEGIN[^\n]*?-----)([\s\S]*?)(-----END[^\n]*-----)?$", value)
    if pem:  # armour lines kept, base64 body reshaped
        return pem.group(1) + _reshape(pem.group(2), r) + (pem.group(3) or "")
    prefix = re.match(r"AKIA|ASIA|ABIA|ACCA|gh[pousr]_|github_pat_|xox[abposr]-", value)
    return _reshape(value, r, prefix.end() if prefix else 0)


def fake_value(kind: str, value: str, key: bytes) -> str:
    """A fake of the same type, deterministic per (key, kind, value), never equal to `value`."""
    for attempt in range(16):
        seed = hmac.new(key, f"{kind}\0{attempt}\0{value}".encode(), hashlib.sha256).digest()
        fake = _fake_one(kind, value, hashlib.shake_256(seed).digest(max(len(value), 32)))
        if fake != value:
            return fake
    return PLACEHOLDERS[kind]  # 16 collisions in a row cannot happen in practice; never leak anyway


_RANDOM_KEY = os.urandom(32)
_warned_no_key = False


def fake_key(config: PiiConfig) -> bytes:
    global _warned_no_key
    value = os.environ.get(config.fake_key_env, "")
    if not value and not _warned_no_key:
        _warned_no_key = True
        log.warning("%s is unset: fake PII values are consistent within this process only",
                    config.fake_key_env)
    return value.encode() if value else _RANDOM_KEY


# ---------------------------------------------------------------- scrub
# Each detector gets the text, the config and the document's plausible phone country codes.
_DETECTORS: list[tuple[str, Callable[[str, PiiConfig, tuple[int, ...]], list[Span]]]] = [  # priority order
    ("secret", lambda t, c, cc: find_secrets(t, c.secret_min_entropy)),
    ("email", lambda t, c, cc: find_emails(t)),
    ("iban", lambda t, c, cc: find_ibans(t)),
    ("national_id", lambda t, c, cc: find_national_ids(t)),
    ("credit_card", lambda t, c, cc: find_cards(t)),
    ("ip", lambda t, c, cc: find_ips(t)),
    ("phone", lambda t, c, cc: find_phones(t, cc)),
]
_TWO_DIGITS = re.compile(r"[0-9][^0-9]?[0-9]")


def detect(text: str, config: PiiConfig | None = None, *, language: str | None = None,
           url: str | None = None) -> list[tuple[int, int, str]]:
    """Non-overlapping PII spans `(start, end, type)` in text order, for the enabled types.

    `language` (langid's code) and `url` tell the phone detector which countries' national
    formats to accept; without them only international and unmistakable national shapes count.
    """
    config = config or PiiConfig()
    # Every detector but secrets and e-mails needs two digits close together.
    numeric = _TWO_DIGITS.search(text) is not None
    codes = plausible_country_codes(text, language, url) if numeric and "phone" in config.types else ()
    starts: list[int] = []
    taken: list[tuple[int, int, str]] = []  # sorted by start, non-overlapping
    for kind, find in _DETECTORS:
        if kind not in config.types or not (numeric or kind in ("secret", "email")):
            continue
        for s, e in find(text, config, codes):
            i = bisect.bisect_right(starts, s)
            if (i and taken[i - 1][1] > s) or (i < len(taken) and taken[i][0] < e):
                continue  # overlaps a span of a higher-priority type
            starts.insert(i, s)
            taken.insert(i, (s, e, kind))
    return taken


def scrub(text: str, config: PiiConfig | None = None, *, language: str | None = None,
          url: str | None = None) -> tuple[str, dict[str, int]]:
    """Replace PII in `text`; returns the new text and a count per enabled type."""
    config = config or PiiConfig()
    counts = {t: 0 for t in TYPES if t in config.types}
    spans = detect(text, config, language=language, url=url) if text else []
    if not spans:
        return text, counts
    key = fake_key(config) if config.mode == "fake" else b""
    out, pos = [], 0
    for s, e, kind in spans:
        counts[kind] += 1
        out += [text[pos:s], fake_value(kind, text[s:e], key) if key else PLACEHOLDERS[kind]]
        pos = e
    out.append(text[pos:])
    return "".join(out), counts


@register_stage("pii", order=70)
class PiiScrubber(Stage):
    """Replaces PII in `doc.text` and records counts per type; never drops a document."""

    name = "pii_v1"
    config_cls = PiiConfig
    columns: ClassVar[dict[str, pa.DataType]] = {f"pii_{t}": pa.int32() for t in TYPES}

    def setup(self) -> None:
        self.config.validate()  # a stage built in code, not from TOML, gets the same checks

    def process_batch(self, docs: list[Document]) -> None:
        for doc in docs:
            doc.text, counts = scrub(doc.text, self.config, language=doc.language, url=doc.url)
            # A type the config leaves out was not looked for: null, not 0.
            doc.meta.update({f"pii_{t}": counts.get(t) for t in TYPES})
