"""URL blocklist: UT1 domain and URL lists as a memory-mapped table of 64-bit hashes.

datatrove's URLFilter keeps its bundled list (4.56M domains, 19.6k URLs) as Python sets:
about 750 MB and 5 s in every worker. Here the lists are hashed once per node into sorted
`np.uint64` arrays (36 MB for the domains), cached as `.npy` files keyed by the list's
source, version and categories, and every worker `np.load(..., mmap_mode="r")`s them, so N
workers share one copy in the page cache. A lookup hashes the host and each parent domain
and binary-searches the table (`np.searchsorted`, one call per batch).

Collisions: with 4.6M entries and 64-bit hashes, the chance that a given unlisted host
collides with some entry is 4.6e6 / 2**64 = 2.5e-13, i.e. one wrong block per ~4e12 URLs.

Semantics (datatrove's URLFilter, with the differences listed in UrlFilterConfig):
blocked when the host or a parent domain is listed, when the URL (without scheme) starts
with a listed URL at a path boundary, when a word of the URL is a banned word, when it has
`soft_word_threshold` soft-banned words, or when its letters-and-digits contain a banned
sub-word. The word lists are datatrove's `assets/*.txt` (216 / 89 / 135 entries).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np
import pyarrow as pa

from pipeline.document import Document
from pipeline.registry import register_stage
from pipeline.stage import Filter

# Bump when the on-disk table layout or the hashing changes: old caches are then ignored.
CACHE_FORMAT = 1
DATATROVE_SOURCE = "datatrove"
DATATROVE_TARBALL = "url_filterblacklistsv0_3_0.tar.gz"
# Datatrove's tarball merges its UT1-derived categories into one list (mostly UT1 "adult",
# plus phishing and others); the split is not shipped, so its entries get this one category.
DATATROVE_CATEGORY = "datatrove_ut1"
EXTRA_CATEGORY = "extra"
# A URL's path is tried as a prefix at this many "/" boundaries at most.
MAX_PATH_SEGMENTS = 8

_NON_ALNUM = re.compile(r"[^a-zA-Z0-9]+")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_IPV4 = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")


@dataclasses.dataclass(frozen=True)
class UrlFilterConfig:
    """Which lists block a URL. Differences from datatrove's URLFilter, on purpose:

    - hosts are lowercased (datatrove compares `Foo.com` as is and misses it);
    - with `match_parent_domains` (default) every parent domain is tried, as UT1/squidGuard
      intend: `a.b.example.com` is blocked when `b.example.com` is listed, and listed
      top-level domains (`xxx`, `porn`, `sex`, `adult`) block their whole TLD. datatrove
      only tries the host and its registered domain; `match_parent_domains = false` does
      exactly that (with tldextract's bundled public-suffix list, as datatrove does);
    - listed IP addresses block (datatrove's tldextract gives IP hosts no domain at all);
    - listed URLs match as prefixes of scheme-less `host/path` at "/" boundaries (the UT1
      file has no schemes, so datatrove's exact `url in list` never matches a real URL);
    - the URL word checks lowercase the URL first.
    """

    # "datatrove": the list bundled with datatrove (4.56M domains). Otherwise the path of an
    # unpacked UT1 `blacklists/` folder: one sub-folder per category holding `domains`
    # (and optionally `urls`), as published at dsi.ut-capitole.fr/blacklists.
    source: str = DATATROVE_SOURCE
    # UT1 categories to load from a folder source; ignored for "datatrove", whose list is
    # already merged. The default is the adult-content part of FineWeb's choice.
    categories: tuple[str, ...] = ("adult", "mixed_adult", "agressif", "phishing", "malware")
    # More domains to block (category "extra"), and domains never to block (a listed
    # parent domain of an allowed host does not block it either).
    extra_domains: tuple[str, ...] = ()
    allow_domains: tuple[str, ...] = ()
    match_parent_domains: bool = True
    # datatrove's banned-word heuristics on the URL text (cheap: a set and an automaton).
    url_words: bool = True
    soft_word_threshold: int = 2
    # Where the hash tables are cached; "" means $GRISTMILL_CACHE or ~/.cache/gristmill.
    cache_dir: str = ""

    def validate(self) -> None:
        if self.soft_word_threshold < 1:
            raise ValueError(f"soft_word_threshold must be >= 1, got {self.soft_word_threshold}")
        if self.source != DATATROVE_SOURCE:
            root = Path(self.source)
            if not root.is_dir():
                raise ValueError(
                    f"source {self.source!r} is neither 'datatrove' nor a folder: give the path of an "
                    "unpacked UT1 blacklists/ folder (one sub-folder per category)"
                )
            if not self.categories:
                raise ValueError("categories is empty: name the UT1 categories to load, e.g. ['adult']")
            missing = [c for c in self.categories if not (root / c / "domains").is_file()]
            if missing:
                have = sorted(p.name for p in root.iterdir() if (p / "domains").is_file())
                raise ValueError(f"categories {missing} have no domains file under {root}; available: {have}")
        for d in (*self.extra_domains, *self.allow_domains):
            if not d or "/" in d or " " in d:
                raise ValueError(f"extra_domains / allow_domains take bare domain names, got {d!r}")


def cache_root(cache_dir: str = "") -> Path:
    return Path(cache_dir or os.environ.get("GRISTMILL_CACHE") or Path.home() / ".cache" / "gristmill")


def _hash(s: str) -> int:
    import xxhash

    return xxhash.xxh3_64_intdigest(s.encode("utf-8"))


def _entries(f: IO[bytes], chunk: int = 1 << 24) -> Iterator[list[str]]:
    """Lowercased list entries of a UT1 file, one list per chunk read (comments skipped)."""
    rest = b""
    while True:
        block = f.read(chunk)
        if not block:
            break
        block = rest + block
        cut = block.rfind(b"\n") + 1
        rest, block = block[cut:], block[:cut]
        yield [s for s in (x.strip() for x in block.decode("utf-8", "replace").lower().split("\n"))
               if s and s[0] != "#"]
    if rest.strip():
        yield [s for s in [rest.decode("utf-8", "replace").strip().lower()] if s[0] != "#"]


def _hash_file(f: IO[bytes]) -> np.ndarray:
    import xxhash

    h = xxhash.xxh3_64_intdigest
    parts = [np.fromiter((h(s.encode("utf-8")) for s in lines), dtype=np.uint64, count=len(lines))
             for lines in _entries(f)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)


def _datatrove_assets() -> Path:
    from datatrove.utils._import_utils import ASSETS_PATH

    return Path(ASSETS_PATH)


def _source_files(config: UrlFilterConfig) -> list[tuple[str, str, Path]]:
    """(category, kind, path) of every list file the config reads; kind is domains or urls."""
    if config.source == DATATROVE_SOURCE:
        tar = _datatrove_assets() / DATATROVE_TARBALL
        return [(DATATROVE_CATEGORY, kind, tar) for kind in ("domains", "urls")]
    root = Path(config.source)
    return [(c, kind, root / c / kind) for c in config.categories for kind in ("domains", "urls")
            if (root / c / kind).is_file()]


def cache_key(config: UrlFilterConfig) -> str:
    """Names the cached tables: changes with the list source, its version and the categories."""
    import importlib.metadata

    files = sorted({str(p): p.stat() for _, _, p in _source_files(config)}.items())
    ident = {
        "format": CACHE_FORMAT,
        "source": config.source if config.source == DATATROVE_SOURCE else str(Path(config.source).resolve()),
        "datatrove": importlib.metadata.version("datatrove"),
        "categories": [DATATROVE_CATEGORY] if config.source == DATATROVE_SOURCE else list(config.categories),
        "files": [(p, st.st_size, st.st_mtime_ns) for p, st in files],
    }
    tag = "datatrove" if config.source == DATATROVE_SOURCE else "ut1"
    return f"{tag}-{hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:16]}"


def build_tables(config: UrlFilterConfig, out: Path) -> dict[str, Any]:
    """Hash every list file of `config` into sorted, de-duplicated tables under `out`."""
    cats = [DATATROVE_CATEGORY] if config.source == DATATROVE_SOURCE else list(config.categories)
    hashes: dict[str, list[np.ndarray]] = {"domains": [], "urls": []}
    owners: dict[str, list[np.ndarray]] = {"domains": [], "urls": []}
    for cat, kind, path in _source_files(config):
        if path.suffixes[-2:] == [".tar", ".gz"]:
            with tarfile.open(path, "r:gz") as tar:
                member = tar.extractfile(kind)
                assert member is not None, f"{path} has no '{kind}' member"
                h = _hash_file(member)
        else:
            with open(path, "rb") as f:
                h = _hash_file(f)
        hashes[kind].append(h)
        owners[kind].append(np.full(len(h), cats.index(cat), dtype=np.uint8))
    meta: dict[str, Any] = {"categories": cats, "source": config.source}
    for kind in ("domains", "urls"):
        all_h = np.concatenate(hashes[kind]) if hashes[kind] else np.zeros(0, np.uint64)
        all_c = np.concatenate(owners[kind]) if owners[kind] else np.zeros(0, np.uint8)
        # return_index gives the first occurrence: a domain in several categories keeps the
        # first one in config order.
        table, first = np.unique(all_h, return_index=True)
        np.save(out / f"{kind}.npy", table)
        np.save(out / f"{kind}_category.npy", all_c[first])
        meta[f"n_{kind}"] = len(table)
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    return meta


def ensure_tables(config: UrlFilterConfig) -> Path:
    """The cache folder of `config`'s tables, built first if absent.

    Built in a temporary folder beside it and renamed into place, so concurrent workers
    never see a half-written table: the first rename wins, the others discard their copy.
    """
    root = cache_root(config.cache_dir) / "url_blocklist"
    final = root / cache_key(config)
    if (final / "meta.json").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=root))
    try:
        build_tables(config, tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "meta.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


@dataclasses.dataclass
class HashTable:
    """Sorted 64-bit hashes (memory-mapped) with the category index of each."""

    hashes: np.ndarray
    category: np.ndarray

    @classmethod
    def load(cls, folder: Path, kind: str) -> HashTable:
        return cls(np.load(folder / f"{kind}.npy", mmap_mode="r"),
                   np.load(folder / f"{kind}_category.npy", mmap_mode="r"))

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Category index of each key, -1 where the key is not in the table."""
        out = np.full(len(keys), -1, dtype=np.int32)
        if len(self.hashes) == 0 or len(keys) == 0:
            return out
        pos = np.minimum(np.searchsorted(self.hashes, keys), len(self.hashes) - 1)
        hit = np.asarray(self.hashes[pos]) == keys
        out[hit] = np.asarray(self.category[pos[hit]], dtype=np.int32)
        return out


def split_url(url: str) -> tuple[str, str]:
    """(lowercased host, path without query or fragment) of a URL, scheme optional."""
    s = _SCHEME.sub("", url.strip(), count=1).removeprefix("//")
    end = len(s)
    for ch in "/?#":
        i = s.find(ch)
        if i != -1:
            end = min(end, i)
    netloc, rest = s[:end], s[end:]
    netloc = netloc.rsplit("@", 1)[-1]
    if netloc.startswith("["):  # IPv6 literal
        host = netloc[1:].split("]", 1)[0]
    else:
        host = netloc.split(":", 1)[0]
    path = rest.split("?", 1)[0].split("#", 1)[0] if rest.startswith("/") else ""
    return host.strip().rstrip(".").lower(), path


def parent_domains(host: str) -> list[str]:
    """The host and every parent domain, most specific first (an IP address only itself)."""
    if not host:
        return []
    if _IPV4.match(host) or ":" in host:
        return [host]
    labels = host.split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


def url_prefixes(host: str, path: str) -> list[str]:
    """`host/path` prefixes ending at "/" boundaries, with and without the trailing slash."""
    hosts = [host, host[4:]] if host.startswith("www.") else [host]
    segs = [s for s in path.split("/") if s][:MAX_PATH_SEGMENTS]
    out = []
    for h in hosts:
        out.append(h + "/")
        acc = h
        for s in segs:
            acc = f"{acc}/{s}"
            out += [acc, acc + "/"]
    return out


def _read_words(name: str) -> set[str]:
    # datatrove's parse_list: skip "#" lines, keep letters and digits only, lowercase.
    with open(_datatrove_assets() / name, encoding="utf-8") as f:
        return {_NON_ALNUM.sub("", x).lower() for x in f if x and x[0] != "#"} - {""}


@register_stage("url", order=10, formats=("warc",))
class UrlFilter(Filter):
    """Drops documents whose URL is on a blocklist; needs only `doc.url` (runs before extraction)."""

    name = "url_blocklist_v1"
    config_cls = UrlFilterConfig
    columns: ClassVar[dict[str, pa.DataType]] = {
        # the list category that blocked the URL ("datatrove_ut1", a UT1 category, "extra",
        # or "url_words"); null when not blocked
        "url_blocked_category": pa.string(),
        # the listed domain / URL / word that matched; null when not blocked
        "url_blocked_match": pa.string(),
    }

    def setup(self) -> None:
        c = self.config
        self.table_dir = ensure_tables(c)
        self._meta = json.loads((self.table_dir / "meta.json").read_text())
        self._categories: list[str] = self._meta["categories"]
        self._domains = HashTable.load(self.table_dir, "domains")
        self._urls = HashTable.load(self.table_dir, "urls")
        self._extra = {d.lower().strip(".") for d in c.extra_domains}
        self._allow = {d.lower().strip(".") for d in c.allow_domains}
        self._tld = None
        if not c.match_parent_domains:
            from tldextract import TLDExtract

            # suffix_list_urls=(): the public-suffix snapshot bundled with tldextract, no network.
            self._tld = TLDExtract(suffix_list_urls=())
        if c.url_words:
            import ahocorasick

            self._banned = _read_words("banned_words.txt")
            self._soft = _read_words("soft_banned_words.txt")
            self._subwords = ahocorasick.Automaton()
            for w in sorted(_read_words("banned_subwords.txt")):
                self._subwords.add_word(w, w)
            self._subwords.make_automaton()

    def _domain_candidates(self, host: str) -> list[str]:
        if self._tld is None:
            return parent_domains(host)
        info = self._tld(host)
        registered = f"{info.domain}.{info.suffix}" if info.domain and info.suffix else ""
        return [d for d in dict.fromkeys([registered, info.fqdn]) if d]

    def score_batch(self, docs: list[Document]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{"url_blocked_category": None, "url_blocked_match": None} for _ in docs]
        # One searchsorted per table for the whole batch: (doc index, candidate string).
        dom_q: list[tuple[int, str]] = []
        url_q: list[tuple[int, str]] = []
        parsed: dict[int, tuple[str, str]] = {}
        for i, doc in enumerate(docs):
            if not doc.url:
                continue
            host, path = split_url(doc.url)
            if any(d in self._allow for d in parent_domains(host)):
                continue
            parsed[i] = (host, path)
            cands = self._domain_candidates(host)
            extra = next((d for d in cands if d in self._extra), None)
            if extra is not None:
                out[i] = {"url_blocked_category": EXTRA_CATEGORY, "url_blocked_match": extra}
                continue
            dom_q += [(i, d) for d in cands]
            url_q += [(i, u) for u in url_prefixes(host, path)]
        self._resolve(self._domains, dom_q, out)
        self._resolve(self._urls, url_q, out)
        if self.config.url_words:
            for i in parsed:
                if out[i]["url_blocked_category"] is None:
                    word = self._url_word(docs[i].url or "")
                    if word is not None:
                        out[i] = {"url_blocked_category": "url_words", "url_blocked_match": word}
        return out

    def _resolve(self, table: HashTable, queries: list[tuple[int, str]], out: list[dict[str, Any]]) -> None:
        if not queries:
            return
        keys = np.fromiter((_hash(s) for _, s in queries), dtype=np.uint64, count=len(queries))
        for (i, s), cat in zip(queries, table.lookup(keys)):
            if cat >= 0 and out[i]["url_blocked_category"] is None:
                out[i] = {"url_blocked_category": self._categories[cat], "url_blocked_match": s}

    def _url_word(self, url: str) -> str | None:
        """datatrove's three URL word rules, in its order; returns a tagged match or None."""
        low = url.lower()
        words = set(_NON_ALNUM.split(low))
        hard = sorted(words & self._banned)
        if hard:
            return f"banned_word:{hard[0]}"
        soft = sorted(words & self._soft)
        if len(soft) >= self.config.soft_word_threshold:
            return "soft_banned_words:" + ",".join(soft)
        for _, w in self._subwords.iter(_NON_ALNUM.sub("", low)):
            return f"banned_subword:{w}"
        return None

    def keep(self, doc: Document, scores: dict[str, Any]) -> tuple[bool, str | None]:
        cat, match = scores["url_blocked_category"], scores["url_blocked_match"]
        if cat is None:
            return True, None
        if cat == "url_words":
            return False, "url_" + match.split(":", 1)[0]
        return False, "url_blocklist_url" if "/" in match else "url_blocklist_domain"

