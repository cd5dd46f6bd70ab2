"""Payment card numbers: every network in current use, as people type them, minus look-alikes.

A candidate is 12 to 19 digits, bare or in the groups people and shops print (4-4-4-4, 4-4-4-4-3,
4-4-4 for a 12-digit Maestro, 4-6-5 for Amex, 4-6-4 for Diners) with one kind of separator (space
or dash). It is a card when its prefix and length belong to a network in
`data/pii/card_networks.tsv` (Visa, Mastercard 2-series included, Amex, Discover, Diners, JCB 15
and 16-19, Maestro 12-19, UnionPay, Mir, RuPay, Troy, Verve, Elo, Hipercard, ...) and its Luhn
check digit is right.

One random 12-19 digit number in ten passes Luhn, and most prefixes belong to some network, so
the look-alikes are found by context, not by the number: an order, invoice, tracking, article,
EAN/ISBN or IMEI word just before it (on the same line) leaves it, unless a card word is nearer
("Bestellung mit Kreditkarte 4111 ..."); "#", "No." and "Nr." say nothing by themselves. Numbers inside URLs, after a "#", "+", "/" or "=",
glued to letters, or cut out of a longer run of digit groups are never candidates.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

TABLE = Path(__file__).resolve().parent / "data" / "pii" / "card_networks.tsv"
Span = tuple[int, int]


@lru_cache(maxsize=1)
def networks() -> dict[int, list[tuple[str, str, str]]]:
    """Card length -> [(lo, hi, network)]: prefix bounds of equal digit count, read from TABLE."""
    by_len: dict[int, list[tuple[str, str, str]]] = {}
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#") or line.startswith("network\t"):
            continue
        name, prefixes, lengths, _luhn = line.split("\t")
        lens: set[int] = set()
        for part in lengths.split(","):
            lo, _, hi = part.partition("-")
            lens.update(range(int(lo), int(hi or lo) + 1))
        for p in prefixes.split(","):
            lo, _, hi = p.partition("-")
            if len(lo) != len(hi or lo):
                raise ValueError(f"{TABLE}: {name}: range {p} has bounds of different lengths")
            for n in lens:
                by_len.setdefault(n, []).append((lo, hi or lo, name))
    return by_len


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def card_network(digits: str) -> str | None:
    """The first network whose prefix range and length fit `digits` (Luhn not checked)."""
    for lo, hi, name in networks().get(len(digits), ()):
        if lo <= digits[:len(lo)] <= hi:
            return name
    return None


# Not after a letter, digit, "/", "=", "#", "+" or "." (URLs, post ids, "+49 ..."), and not the
# tail of a longer run of groups ("9400 1111 2022 ..." tracking numbers).
_CARD = re.compile(r"[0-9](?<![A-Za-z0-9_.,/=#&?+-][0-9])(?<![0-9][ -][0-9])(?:[ -]?[0-9]){11,18}"
                   r"(?![ -]?[0-9]|[.,][0-9]|[A-Za-z])")
_GROUPINGS = {(4, 6, 5), (4, 6, 4)}  # Amex, Diners
_NOT_CARD_CUE = re.compile(
    r"(?i)(?:order|bestell|auftrag|invoice|rechnung|factura|facture|commande|pedido|ordine|zamówien|"
    r"tracking|sendung|paket|parcel|colis|shipment|awb|waybill|isbn|issn|ean|gtin|upc|sku|imei|serial|"
    r"artikel|art\.|item|product|produkt|ticket|kunden|customer|client|account|konto|iban|"
    r"transaction|transaktion|\b(?:id|ref)\b|订单|运单|快递|序列号)")
_CARD_CUE = re.compile(
    r"(?i)(?:card|karte|carte|tarjeta|cart[ãa]o|carta|kaart|karta|kort|kartu|kredit|credit|debit|"
    r"visa|master|amex|maestro|jcb|diners|discover|unionpay|\bmir\b|rupay|\belo\b|hipercard|troy|verve|"
    r"\bpan\b|\bcc\b|卡号|信用卡|银行卡|银联|カード)")
CUE_WINDOW = 32  # characters before the number, on its line, where a cue word counts


def _last_end(rx: re.Pattern, s: str) -> int:
    return max((m.end() for m in rx.finditer(s)), default=-1)


def grouping_ok(raw: str) -> bool:
    """One separator kind, in a grouping card numbers are printed in (or none)."""
    if " " in raw and "-" in raw:  # mixed separators: a list of numbers, not one card
        return False
    groups = tuple(len(g) for g in re.split(r"[ -]", raw))
    if len(groups) == 1 or groups in _GROUPINGS:
        return True
    return len(groups) >= 3 and all(g == 4 for g in groups[:-1]) and 1 <= groups[-1] <= 4


def card_ok(raw: str) -> bool:
    digits = raw.replace(" ", "").replace("-", "")
    return grouping_ok(raw) and card_network(digits) is not None and luhn_ok(digits)


def find_cards(text: str) -> list[Span]:
    spans = []
    for m in _CARD.finditer(text):
        if not card_ok(m.group()):
            continue
        before = text[max(0, m.start() - CUE_WINDOW):m.start()].rsplit("\n", 1)[-1]
        bad = _last_end(_NOT_CARD_CUE, before)
        if bad >= 0 and _last_end(_CARD_CUE, before) < bad:  # the nearer word decides
            continue
        spans.append(m.span())
    return spans
