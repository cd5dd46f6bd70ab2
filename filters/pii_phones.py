"""Phone numbers: international ones by libphonenumber, national ones by shape or by region.

Candidates are 5 to 15 digits in a phone's shape (single separators, "+" or "(" first, an
optional extension) that neither start nor end inside a longer run of numbers. Then:
- "+49 ..." / "0049 ...": libphonenumber (`phonenumbers`) checks the length for the country.
- National formats are sorted three ways. PHONE by shape: an area code in parentheses, an
  extension, a "Tel"/"电话" cue, a trunk 0 and 8+ digits, NANP 3-3-4 groups, a Chinese mobile,
  four or more even groups. NOT a phone: dates, ranges ("1939-1945", "225-230"), year lists,
  calendar rows and table headers (arithmetic sequences), decimals and dotted thousands, SSN
  shapes, a house number before a postcode, ISBN/ISSN/PMID/DIN and "No." before it. UNSURE:
  everything else (space-thousands "413 228 297", "030/1234567", bare digit runs, 3-group
  numbers): those are phones when valid (libphonenumber's `is_valid_number`, i.e. the number
  plan's ranges, not only its length) in a region the document plausibly comes from.
- The plausible regions come from the document: the URL's country TLD, a "+CC" anywhere in the
  text, and the regions where langid's language is spoken (`data/pii/phone_regions.tsv`).
  Regions that share a country code (US and CA) need one parse: the cost is one parse per
  distinct country code per UNSURE candidate (about 20 us each).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

import phonenumbers

TABLE = Path(__file__).resolve().parent / "data" / "pii" / "phone_regions.tsv"
Span = tuple[int, int]
PHONE, NOT, UNSURE = "phone", "not", "unsure"
LANGUAGE_REGIONS = 3

# Country TLDs sold as generic names: they say nothing about where a page is from.
_VANITY_TLDS = {"io", "co", "tv", "me", "fm", "ai", "ly", "cc", "ws", "la", "gg", "sh", "ac", "to", "nu", "im",
                "ag", "vc", "gd", "ms", "tk", "ml", "ga", "cf", "gq", "su", "eu"}


@lru_cache(maxsize=1)
def language_regions() -> dict[str, tuple[str, ...]]:
    out = {}
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#") and not line.startswith("language\t"):
            lang, _, regions = line.partition("\t")
            out[lang] = tuple(r for r in regions.split(",") if r)
    return out


def url_region(url: str | None) -> str | None:
    """The region of a URL's country TLD ("uk" -> GB), or None for generic and vanity TLDs."""
    if not url:
        return None
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return None
    tld = host.rsplit(".", 1)[-1].lower()
    if len(tld) != 2 or tld in _VANITY_TLDS:
        return None
    region = "GB" if tld == "uk" else tld.upper()
    return region if region in phonenumbers.SUPPORTED_REGIONS else None


# An international number as written: "+49 30 901820", "+33 (0)1 42 68 53 00".
_PLUS_NUMBER = re.compile(r"\+ ?[1-9][0-9 ()./-]{5,20}[0-9]")


def text_country_codes(text: str, limit: int = 8) -> list[int]:
    """Country codes of the valid international numbers in the text ("+CC ..."), at most `limit`.

    Valid, not just a "+" and digits: table cells like "+466-469" or "+83" name no country.
    """
    codes: list[int] = []
    for i, m in enumerate(_PLUS_NUMBER.finditer(text)):
        if i == 4 * limit:
            break
        try:
            num = phonenumbers.parse(m.group())
        except phonenumbers.NumberParseException:
            continue
        if num.country_code not in codes and phonenumbers.is_valid_number(num):
            codes.append(num.country_code)
            if len(codes) == limit:
                break
    return codes


def plausible_country_codes(text: str, language: str | None = None, url: str | None = None) -> tuple[int, ...]:
    """Country codes to try national-format numbers in: URL TLD, then "+CC" in the text, then language."""
    codes: list[int] = []
    region = url_region(url)
    if region:
        codes.append(phonenumbers.country_code_for_region(region))
    if "+" in text:
        codes += text_country_codes(text)
    # A language alone is weak evidence: its three largest regions only. Small plans without a
    # trunk prefix (Luxembourg: 4 to 11 digits) would otherwise take table cells on German pages.
    for r in language_regions().get((language or "").split("_")[0].lower(), ())[:LANGUAGE_REGIONS]:
        codes.append(phonenumbers.country_code_for_region(r))
    return tuple(dict.fromkeys(c for c in codes if c))


def valid_in(number: str, codes: tuple[int, ...]) -> bool:
    """Is `number` a valid number of one of the countries `codes`, written as it is written there?

    Valid: in the number plan's ranges (`is_valid_number`). Written as there: its digits are
    those of the country's national format, with or without the national prefix ("1" before a
    US number is how people write it; a German number without its trunk 0 is not how anyone
    writes one, so "1537929994" is a timestamp, not the mobile 01537 929994).
    """
    digits = re.sub(r"[^0-9]", "", number)
    for code in codes:
        region = phonenumbers.region_code_for_country_code(code)
        try:
            num = phonenumbers.parse(number, region)
        except phonenumbers.NumberParseException:
            continue
        if num.country_code != code or not phonenumbers.is_valid_number(num):
            continue
        national = re.sub(r"[^0-9]", "", phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.NATIONAL))
        meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
        if digits == national or digits == ((meta.national_prefix if meta else None) or "") + national:
            return True
    return False


# Candidates: digits with single separators, "+" or "(" first, an optional extension. A candidate
# neither starts nor ends inside a longer run of numbers ("120 125 130 ... 164" in a table): the
# look-behinds and the look-ahead reject a cut, so long runs yield none.
_PHONE = re.compile(r"[+(0-9](?<![A-Za-z0-9_+\-/.@#=&%$€£¥][+(0-9])(?<![0-9][:, ./-][(0-9])"
                    r"[0-9 ()./-]{3,25}[0-9](?: ?(?:x|ext\.?) ?[0-9]{1,6})?"
                    r"(?![A-Za-z0-9_/@%€$]|[ .,:/-][0-9]| ?(?:€|EUR|USD|元|km|kg|%))")
# Words just before (or after) a number that make it a phone number, or something else.
_PHONE_CUE = re.compile(r"(?i)(?:\b(?:tel|t[ée]l[ée]?(?:phone|fon|fono)(?:nummer)?|phone|fon|fax|call|"
                        r"mobile?|cell|handy|hotline|whatsapp|contact|kontakt|móvil|rufnummer)\b|"
                        r"电话|手机|热线|传真|联系|咨询|售前|客服)[^0-9\n]{0,12}$")
_PHONE_CUE_AFTER = re.compile(r"[\s,;:(-]{0,3}(?i:tel|phone|fax|mobile|cell|office|home|work)\b")
_NOT_PHONE_CUE = re.compile(r"(?:\b(?:ISBN(?:-1[03])?|ISSN|PMID|PMC|DIN|ISO|IEC|EN|RFC|Art\.)|"
                            r"(?i:\b(?:arXiv|doi|no\.?|nr\.?|apt\.?|suite|unit|box))|§|N[°º])\s*[:/]?\s*$")
# Nouns of numbers that are not phones, a few words before: "Tracking number: 1467...", "Your order 5144...".
_NOT_PHONE_NOUN = re.compile(r"(?i)(?:order|bestell|auftrag|invoice|rechnung|tracking|sendung|parcel|"
                             r"\b(?:isbn|ean|gtin|upc|imei|sku|item|serial|ts)\b|artikel|timestamp|zeitstempel|"
                             r"订单|运单|单号)[^0-9\n]{0,16}$")
_DAY, _MONTH = r"(?:0?[1-9]|[12][0-9]|3[01])", r"(?:0?[1-9]|1[0-2])"
_DATE = re.compile(rf"(?<![0-9])(?:[0-9]{{4}}[-./]{_MONTH}[-./]{_DAY}|{_DAY}[-./]{_MONTH}[-./](?:[0-9]{{4}}|"
                   rf"[0-9]{{2}})|{_MONTH}[-./]{_DAY}[-./][0-9]{{4}})(?![0-9])")
# "(030) ", "(06 1) ", "(0-312) ", "8 (301) ", "1 (403) ": an area code in parentheses, after a trunk prefix.
_AREA_CODE = re.compile(r"^(?:[0-9]{1,2} ?)?\([0-9][0-9 -]{0,5}\) ?")
_EXT = re.compile(r" ?(?:x|ext\.?) ?[0-9]{1,6}$")
_CN_MOBILE = re.compile(r"1[3-9][0-9](?:[ -]?[0-9]{4}){2}")
_NANP = re.compile(r"[0-9]{3}([-. ])[0-9]{3}\1[0-9]{4}")


def _isbn13(digits: str) -> bool:
    return (len(digits) == 13 and digits[:3] in ("978", "979")
            and sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(digits)) % 10 == 0)


def national_shape(main: str, digits: str) -> str:
    """PHONE, NOT or UNSURE for a national-format number without cue, extension or area code."""
    if _CN_MOBILE.fullmatch(main) or _NANP.fullmatch(main):
        return PHONE
    if "(" in main or ")" in main:
        return NOT
    if main.isdigit():  # a bare run: an id as often as a phone
        return PHONE if len(main) == 10 and phonenumbers.is_valid_number(phonenumbers.parse(main, "US")) \
            else UNSURE
    seps = set(re.findall(r"[ ./-]", main))
    groups = re.split(r"[ ./-]+", main)
    if min(map(len, groups[1:])) < 2:
        return NOT  # 1-digit groups: tables, "3 4 5 6 7"
    if len(groups[0]) == 1:
        return UNSURE  # a trunk prefix ("8 372 366 98 38") or "4 217 511" (Seychelles), or a list
    if (seps == {"/"} and len(groups) == 2) or (len(seps) > 1 and "." not in seps):
        return UNSURE  # "030/1234567", "011 2345-6622", "08-12 34 75": libphonenumber's own national formats
    if len(seps) != 1 or "/" in seps:
        return NOT  # dotted mixes: times "8.30 - 18.00", "4.000 150"
    ints = [int(g) for g in groups]
    if seps == {"-"} and [len(g) for g in groups] == [3, 2, 4]:
        return NOT  # SSN-shaped: the valid ones were taken by the national-ID detector
    steps = {y - x for x, y in zip(ints, ints[1:])}
    if (len(ints) > 2 and len(steps) == 1) or all(1800 <= i <= 2100 for i in ints):
        return NOT  # calendar rows "01 02 03 04 05 06 07", table headers "150 153 156", year lists
    if len(groups) == 2 and (any(len(g) == 4 and 1900 <= int(g) <= 2099 for g in groups)
                             or ("-" in seps and len(groups[0]) == len(groups[1]) and 0 < ints[1] - ints[0] < 1000)):
        return NOT  # "ley N° 464-2021", "décret 2019-1130", ranges 1939-1945 and 225-230
    if "." in seps and (len(groups) == 2 or all(len(g) == 3 for g in groups[1:])):
        return NOT  # decimals and 1.234.567 thousands
    if digits[0] == "0":
        return PHONE if len(digits) >= 8 else UNSURE  # trunk prefix; "094-0011" is a postcode
    if len(groups) == 2 and len(groups[0]) <= 3 and len(groups[1]) == 5:
        return NOT  # house number + postcode: "Hohenzollernstraße 45 71638 Ludwigsburg"
    if " " in seps:  # tables and French/Polish thousands ("413 228 297") are space-separated too
        thousands = len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])
        return PHONE if not thousands and (len(groups) >= 4 or (len(groups) == 2 and len(groups[1]) >= 4)) \
            else UNSURE
    if "." in seps and len(digits) < 8:
        return UNSURE  # "20.18.91": short numbers; "57.751.98" is as often an article number
    return PHONE  # dash or dot groups: "50-98-28-96", "986.291.2294"


def phone_ok(cand: str, text: str, start: int, codes: tuple[int, ...] = ()) -> bool:
    """Is `cand`, found at `start` of `text`, a phone number? `codes`: plausible country codes."""
    main = _EXT.sub("", cand)
    digits = re.sub(r"[^0-9]", "", main)
    if not 5 <= len(digits) <= 15 or _DATE.search(main) or _isbn13(digits):
        return False
    before = text[max(0, start - 32):start]
    cue = _PHONE_CUE.search(before) or _PHONE_CUE_AFTER.match(text, start + len(cand))
    if not cue and (_NOT_PHONE_CUE.search(before) or _NOT_PHONE_NOUN.search(before)):
        return False
    if len(digits) < 7:  # small countries' 5-6 digit numbers: with a cue, valid in the page's country
        return bool(cue) and main[0] != "+" and valid_in(main, codes[:1])
    if main[0] == "+" or main.startswith("00"):
        try:
            number = phonenumbers.parse("+" + (main[2:] if main[0] == "0" else main[1:]))
            return phonenumbers.is_possible_number(number)
        except phonenumbers.NumberParseException:
            return False
    body = _AREA_CODE.sub("", main)  # an area code in parentheses
    if len(body) < len(main) or main != cand or cue:  # area code, extension or cue: "030 / 2325 786 -122"
        return "(" not in body and ")" not in body
    verdict = national_shape(main, digits)
    return verdict == PHONE or (verdict == UNSURE and valid_in(main, codes))


def find_phones(text: str, codes: tuple[int, ...] = ()) -> list[Span]:
    spans = []
    for m in _PHONE.finditer(text):
        cand, start = m.group(), m.start()
        if cand[0] == "(" and ")" not in cand:  # the "(" of a remark: "(2017-10-04"
            cand, start = cand[1:], start + 1
        if phone_ok(cand, text, start, codes):
            spans.append((start, start + len(cand)))
    return spans
