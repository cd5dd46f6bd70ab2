"""Phone numbers: international ones by libphonenumber, national ones by shape or by region.

Candidates are 5 to 15 digits in a phone's shape (single separators, "+" or "(" first, an
optional extension) that neither start nor end inside a longer run of numbers; an en dash
separates groups only in a number that starts with "+", 0 or "(" or follows a phone word
(elsewhere it is a range, "S. 299 – 301"). Two numbers of one line ("021-54098575 54098577")
are two. Then:
- "+49 ..." / "0049 ...": libphonenumber (`phonenumbers`) checks the length for the country.
- 5-6 digits (small plans: the Faroes, Tuvalu, St Helena): right after a phone noun or a call
  ("Tel.: 22557", "call us on 21 306"); or after another phone word, or in 2-digit pairs, when
  valid in the page's first plausible country.
- National formats are sorted three ways. PHONE by shape: an area code in parentheses, an
  extension, a phone word before it ("Tel", "ring", "bel ons op", "zadzwoń", "电话": ~20
  languages), a trunk 0 and 8+ digits, NANP 3-3-4 groups, a Chinese mobile, the trunk-8 layout
  "8 495 123 45 67", four or more even groups. NOT a phone: dates, ranges ("1939-1945", "225-230"), year lists,
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
# An en dash separates groups too ("01805 – 4444", "+49 (0)40-30030–1000"): it is read as "-".
_PHONE = re.compile(r"[+(0-9](?<![A-Za-z0-9_+\-/.@#=&%$€£¥–][+(0-9])(?<![0-9][:, ./–-][(0-9])"
                    r"[0-9 ()./–-]{3,25}[0-9](?: ?(?:x|ext\.?) ?[0-9]{1,6})?"
                    r"(?![A-Za-z0-9_/@%€$]|[ .,:/–-][0-9]| ?(?:€|EUR|USD|元|km|kg|%))")
# Words just before (or after) a number that make it a phone number, or something else. The
# phone words: nouns ("Telefon", "gsm", "тел."), and verbs and phrases of calling ("ring", "bel ons",
# "zadzwoń", "llámenos", "reach us at", "erreichen Sie uns unter") in the languages langid sees
# most; only words that name a phone or a call, since a cue lets a number of any shape through.
_CUE_WORDS = "|".join([
    r"tel|t[ée]l[ée]?(?:phone|fon|fono)\w*|phone[sd]?|ph|fon|fax|call(?:s|ing)?|ring|dial|mobile?|mob|cell(?:phone)?",
    r"hotline|helpline|switchboard|landline|whats ?app|viber|sms|text (?:us|me)|contact|kontakt",
    r"reach (?:us|me|him|her|them) (?:at|on)|give (?:us|me) a (?:call|ring)",
    r"telefon\w*|rufnummer|handy|mobil(?:nummer|telefon|funk)?|anruf\w*|rufen sie|ruf (?:uns|mich)|durchwahl",
    r"erreich\w* (?:\w+ ){0,3}unter",                                                            # de
    r"portable|appel(?:ez|er|le[zr]?)|joignable|joindre",                                        # fr
    r"tfno|telf|ll[aá]m\w*|m[óo]vil|celular|contacto|cellulare|chiam\w*|numero verde",              # es, it
    r"telefone|telem[óo]vel|ligue|ligar|contato|telefoon\w*|bel(?: ons| me)?|bellen|mobiel|gsm",  # pt, nl
    r"zadzwoń|dzwoń|tlf|volejte|hívj\w*|sunați|τηλ|τηλέφωνο|телефон\w*|тел|звоните|звонить|моб|мобильный",    # pl .. ru
    r"arayın\w*|هاتف|اتصل|جوال|تلفون|موبايل|फ़ोन|फोन"])


def _by_first_letter(alternatives: str) -> str:
    """The same alternation, grouped by first letter ("t(?:el|...)|p(?:hone|...)"): Python's regex
    engine tries every branch at every position, so 80 branches cost 3x what 30 groups do."""
    groups: dict[str, list[str]] = {}
    depth, cur = 0, ""
    for ch in alternatives + "|":
        depth += (ch == "(") - (ch == ")")
        if ch == "|" and depth == 0:
            groups.setdefault(cur[0], []).append(cur[1:])
            cur = ""
        else:
            cur += ch
    return "|".join(f"{first}(?:{'|'.join(rest)})" for first, rest in groups.items())


_PHONE_CUE = re.compile(rf"(?i)(?:\b(?:{_by_first_letter(_CUE_WORDS)})\b|电话|手机|热线|传真|联系|咨询|售前|客服|電話|携帯|"
                        r"전화)[^0-9\n]{0,12}$")
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
# Russia's and its neighbours' trunk-8 layout, "8 495 123 45 67": no table or id is grouped 1-3-3-2-2.
_RU_LAYOUT = re.compile(r"8([ -])[0-9]{3}\1[0-9]{3}\1[0-9]{2}\1[0-9]{2}")
# A phone noun or a call right before a number ("Tel.: ", "Phone ", "call us on", "llame al"): after
# it, 5-6 digits are a local number.
_PHONE_NOUN = re.compile(r"(?i)(?:\b(?:tel|t[ée]l[ée]?(?:phone|fon|fono)|phone|fax|telefone|telefoon|телефон|тел)"
                         r"\.?\s?:?|\b(?:call|ring|dial)(?: us| me)?(?: on| at)?|\bappelez(?:-nous)? (?:le|au)|"
                         r"\bll[aá]m\w* al|\bligue(?: para)?|\bbel(?: ons)? op|\bzadzwoń(?: pod numer)?|\bзвоните)\s?$")
# 2-digit groups of a 6-digit plan ("21 10 77" in the Faroes, "20.18.91" in New Caledonia).
_PAIRS = re.compile(r"[0-9]{2}([ .-])[0-9]{2}\1[0-9]{2}")
_LAST_DIGIT = re.compile(r".*[0-9\n]", re.S)
_CN_MOBILE = re.compile(r"1[3-9][0-9](?:[ -]?[0-9]{4}){2}")
_NANP = re.compile(r"[0-9]{3}([-. ])[0-9]{3}\1[0-9]{4}")


def _isbn13(digits: str) -> bool:
    return (len(digits) == 13 and digits[:3] in ("978", "979")
            and sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(digits)) % 10 == 0)


def national_shape(main: str, digits: str) -> str:
    """PHONE, NOT or UNSURE for a national-format number without cue, extension or area code."""
    if _CN_MOBILE.fullmatch(main) or _NANP.fullmatch(main) or _RU_LAYOUT.fullmatch(main):
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
    main = _EXT.sub("", cand).replace("–", "-")
    digits = re.sub(r"[^0-9]", "", main)
    # A date shape after a country code is a number ("+687 20.11.63": New Caledonia writes 2-2-2).
    if not 5 <= len(digits) <= 15 or (_DATE.search(main) and main[0] != "+") or _isbn13(digits):
        return False
    before = text[max(0, start - 32):start]
    # Phone words hold no digit: look for them after the last digit or line break only (the one
    # kept gives \b its context). In tables that leaves little to search, and the cue list is long.
    last = _LAST_DIGIT.match(before)
    tail = before[last.end() - 1:] if last else before
    cue = _PHONE_CUE.search(tail) or _PHONE_CUE_AFTER.match(text, start + len(cand))
    if not cue and (_NOT_PHONE_CUE.search(before) or _NOT_PHONE_NOUN.search(before)):
        return False
    if "–" in cand and not (cue or main[0] in "+0("):  # an en dash is a range ("1398–408") unless phone-like
        return False
    if len(digits) < 7:  # small countries' 5-6 digit numbers
        if main[0] == "+" or "(" in main:
            return False
        if _PHONE_NOUN.search(tail):  # "Tel. 4 12 34": a local number, whatever the country
            return True
        # after a phone word, or in 2-digit pairs, valid in the page's country
        return bool(cue or _PAIRS.fullmatch(main)) and valid_in(main, codes[:1])
    if main[0] == "+" or main.startswith("00"):
        try:
            number = phonenumbers.parse("+" + (main[2:] if main[0] == "0" else main[1:]))
            return phonenumbers.is_possible_number(number)
        except phonenumbers.NumberParseException:
            return False
    body = _AREA_CODE.sub("", main)  # an area code in parentheses
    if len(body) < len(main) or _EXT.search(cand) or cue:  # area code, extension or cue: "030 / 2325 786 -122"
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
        elif " " in cand:  # two numbers of one line: "021-54098575 54098577" (a second line's digits)
            head, _, tail = cand.rpartition(" ")
            last = re.split(r"[ ./–-]", head)[-1]
            if tail.isdigit() and len(tail) == len(last) >= 6 and phone_ok(head, text, start, codes):
                spans += [(start, start + len(head)), (start + len(cand) - len(tail), start + len(cand))]
    return spans
