"""Quality filters: gristmill's QualityFilter vs datatrove's FineWeb chain, same documents, one run.

    .venv/bin/python bench/filters.py            # all 990 trafilatura pages + the 5 Chinese seeds
    .venv/bin/python bench/filters.py --limit 200

Documents: the visible text of `../shared/corpus/pages/trafilatura/html/*.gz`, extracted once
with FineWeb's trafilatura settings (datatrove's Trafilatura extractor: favor_precision,
deduplicate) and cached in the temp folder, plus `../shared/seeds/*.txt`; language from the
shipped lid.176 model. datatrove's chain is GopherRepetitionFilter -> GopherQualityFilter ->
C4QualityFilter(filter_no_terminal_punct=False) -> FineWebQualityFilter, as FineWeb ran it,
built per language (spaCy's blank tokenizers, offline). It cannot run on Chinese or Japanese
here (its zh tokenizer needs jieba, ja needs sudachi), so speed is compared on the documents
both can process. A socket guard proves that nothing is downloaded during the run.
Prints docs/s per core (CPU time of this one process), the ratio, and keep/drop agreement
on English documents with every disagreement and the scores behind it.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import hashlib
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Run as a script, Python puts bench/ first on sys.path, where this file would shadow the
# `filters` package (and bench/tokenize.py the standard library): the repo root goes there.
sys.path[0] = str(REPO)
SHARED = REPO.parent / "shared"
HTML_DIR = SHARED / "corpus" / "pages" / "trafilatura" / "html"
SEEDS = SHARED / "seeds"

from filters.quality import DATATROVE_REASONS, QualityFilter, shipped_stop_words
from pipeline.document import Document

# lid.176 code -> datatrove language (ISO 639-3) for the languages of this corpus.
DT_LANG = {"en": "eng", "de": "deu", "fr": "fra", "es": "spa", "it": "ita", "pt": "por", "pl": "pol",
           "nl": "nld", "fi": "fin", "ru": "rus", "hu": "hun", "el": "ell", "mk": "mkd", "ms": "zsm",
           "no": "nob", "ar": "arb"}


def datatrove_languages() -> dict[str, str]:
    """The DT_LANG entries whose datatrove word tokenizer is installed (some need stanza etc.)."""
    from datatrove.utils.word_tokenizers import load_word_tokenizer

    ok = {}
    for code, dt_code in DT_LANG.items():
        try:
            load_word_tokenizer(dt_code).word_tokenize("a test")
            ok[code] = dt_code
        except ImportError as exc:
            print(f"datatrove cannot tokenize {code}: {exc}", file=sys.stderr)
    return ok


def guard_network() -> None:
    """Fail loudly if anything in this process opens a network connection."""

    def refuse(self, address, *a, **k):
        raise RuntimeError(f"bench/filters.py: something tried to connect to {address} (must run offline)")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse  # type: ignore[method-assign]


def load_documents(limit: int | None) -> list[dict]:
    """Extracted page texts (cached in the temp folder) plus the seeds, with lid.176 languages."""
    if not HTML_DIR.is_dir():
        sys.exit(f"needs {HTML_DIR} (the shared test material beside the repository)")
    files = sorted(HTML_DIR.glob("*.gz"))
    key = hashlib.sha1("\n".join(p.name for p in files).encode()).hexdigest()[:12]
    cache = Path(tempfile.gettempdir()) / f"gristmill_bench_filters_{key}.jsonl"
    if not cache.is_file():
        import trafilatura

        t0 = time.time()
        with cache.open("w", encoding="utf-8") as out:
            for p in files:
                with gzip.open(p) as f:
                    html = f.read().decode("utf-8", "replace")
                text = trafilatura.extract(html, favor_precision=True, include_comments=False, deduplicate=True)
                out.write(json.dumps({"id": p.name[:-3], "text": text or ""}, ensure_ascii=False) + "\n")
        print(f"extracted {len(files)} pages in {time.time() - t0:.0f}s -> {cache}", file=sys.stderr)
    docs = [json.loads(line) for line in cache.open(encoding="utf-8")]
    docs = [d for d in docs if d["text"].strip()]
    if limit:
        docs = docs[:limit]
    docs += [{"id": p.name, "text": p.read_text(encoding="utf-8")} for p in sorted(SEEDS.glob("*.txt"))]
    import fasttext

    model = fasttext.load_model(str(REPO / "filters" / "data" / "lid.176.ftz"))
    for d in docs:
        labels, _ = model.predict(" ".join(d["text"].split()))
        d["lang"] = labels[0].removeprefix("__label__")
    return docs


def datatrove_chain(lang: str, dt_lang: str):
    """FineWeb's chain for one language, with our stop-word list for it (datatrove's default is
    Gopher's English list, which would drop every non-English page) or the rule off, as ours."""
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    stop = shipped_stop_words().get(lang)
    gopher = GopherQualityFilter(language=dt_lang, stop_words=sorted(stop) if stop else None,
                                 min_stop_words=2 if stop else None)
    return [GopherRepetitionFilter(language=dt_lang), gopher,
            C4QualityFilter(filter_no_terminal_punct=False, language=dt_lang), FineWebQualityFilter(language=dt_lang)]


def run_datatrove(docs: list[dict]) -> tuple[dict[str, str | None], float]:
    """Reason (None = kept) per doc id, and CPU seconds, for datatrove's chain."""
    from datatrove.data import Document as DtDocument

    chains: dict[str, list] = {}
    out: dict[str, str | None] = {}
    t0 = time.process_time()
    for d in docs:
        if d["lang"] not in chains:
            chains[d["lang"]] = datatrove_chain(d["lang"], DT_LANG[d["lang"]])
        chain = chains[d["lang"]]
        doc = DtDocument(text=d["text"], id=d["id"])
        reason = None
        for f in chain:
            r = f.filter(doc)
            if r is not True:
                reason = r[1] if isinstance(r, tuple) else "dropped"
                break
        out[d["id"]] = reason
    return out, time.process_time() - t0


def to_documents(docs: list[dict]) -> list[Document]:
    return [Document(doc_id=d["id"], warc_path="", warc_offset=0, record_type="response", text=d["text"],
                     n_chars=len(d["text"]), language=d["lang"]) for d in docs]


def run_ours(docs: list[dict]) -> tuple[list[Document], float]:
    f = QualityFilter()
    f.ensure_setup()
    batch = to_documents(docs)
    t0 = time.process_time()
    for i in range(0, len(batch), 256):
        f.process_batch(batch[i : i + 256])
    return batch, time.process_time() - t0


def run_whole_chain(docs: list[dict]) -> tuple[list[str], float, dict[str, float]] | None:
    """langid -> quality -> toxicity -> pii with default configs, if those modules exist yet."""
    import importlib

    stages = []
    for module, cls in (("filters.langid", "LangId"), ("filters.quality", "QualityFilter"),
                        ("filters.toxicity", "ToxicityFilter"), ("filters.pii", "PiiScrubber")):
        try:
            stages.append(getattr(importlib.import_module(module), cls)())
        except Exception as exc:  # noqa: BLE001  (another engineer's module, maybe unfinished)
            print(f"whole chain: skipping {module}.{cls}: {type(exc).__name__}: {exc}", file=sys.stderr)
    if len(stages) < 2:
        return None
    ready = []
    for s in stages:
        try:
            s.ensure_setup()
            ready.append(s)
        except Exception as exc:  # noqa: BLE001  (a missing model must not end the benchmark)
            print(f"whole chain: skipping {type(s).__name__}: setup failed: {exc}", file=sys.stderr)
    stages = ready
    if len(stages) < 2:
        return None
    batch = to_documents(docs)
    for d in batch:
        d.language = None  # langid decides
    per: dict[str, float] = collections.Counter()
    t0 = time.process_time()
    for i in range(0, len(batch), 256):
        live = batch[i : i + 256]
        for s in stages:
            live = [d for d in live if d.kept]
            if live:
                t1 = time.process_time()
                s.process_batch(live)
                per[type(s).__name__] += time.process_time() - t1
    return [type(s).__name__ for s in stages], time.process_time() - t0, dict(per)


def extraction_cpu(limit: int | None, compiled: bool = True) -> tuple[int, float]:
    """(pages, CPU s) of gristmill's trafilatura pass (`[extract] mode = "trafilatura"`, the text
    the filters run on) over the same HTML pages, decoding included. `compiled=False`: with
    trafilatura's own XPaths (libxml2) instead of pipeline/xpaths.py's, as before issue 13's
    third session (the same text, more time)."""
    from pipeline import xpaths
    from pipeline.extract import Extract, ExtractConfig

    stage = Extract(ExtractConfig(mode="trafilatura"))
    stage.ensure_setup()
    if not compiled:
        xpaths.uninstall()
    files = sorted(HTML_DIR.glob("*.gz"))[:limit]
    docs = [Document(doc_id=p.name, warc_path="", warc_offset=0, record_type="response", raw=gzip.open(p).read(),
                     content_type="text/html") for p in files]
    t0 = time.process_time()
    for i in range(0, len(docs), 256):
        stage.process_batch(docs[i : i + 256])
    cpu = time.process_time() - t0
    xpaths.install()
    return len(docs), cpu


def ngram_check(docs: list[dict]) -> tuple[int, int, float, float]:
    """(documents whose 13 Gopher repetition values equal datatrove's helpers', documents,
    CPU s of datatrove's helpers, CPU s of filters.ngrams) on our word split of each document."""
    from datatrove.pipeline.filters.gopher_repetition_filter import find_all_duplicate, find_top_duplicate

    from filters import ngrams
    from filters.words import split_document

    words = [split_document(d["text"]).words for d in docs]
    t0 = time.process_time()
    ref = [[find_top_duplicate(g) if (g := [" ".join(w[i : i + n]) for i in range(len(w) - n + 1)]) else 0
            for n in (2, 3, 4)] + [find_all_duplicate(w, n) for n in range(5, 11)] for w in words]
    t1 = time.process_time()
    ngrams.repetition_chars(["warm", "up"], " ")  # numba: compiled or loaded from its cache once
    t_ours = time.process_time()
    ours = []
    for w in words:
        tops, dups = ngrams.repetition_chars(w, " ")
        ours.append(tops + dups)
    t2 = time.process_time()
    return sum(a == b for a, b in zip(ref, ours, strict=True)), len(docs), t1 - t0, t2 - t_ours


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=None, help="use only the first N extracted pages")
    ap.add_argument("--show", type=int, default=40, help="print at most N English disagreements")
    args = ap.parse_args()
    docs = load_documents(args.limit)
    guard_network()
    runnable = datatrove_languages()
    both = [d for d in docs if d["lang"] in runnable]
    langs = collections.Counter(d["lang"] for d in docs)
    print(f"{len(docs)} documents: {dict(langs.most_common())}; datatrove can run on {len(both)}")

    dt, dt_cpu = run_datatrove(both)
    ours_docs, our_cpu = run_ours(both)
    rest = [d for d in docs if d["lang"] not in runnable]
    rest_docs, rest_cpu = run_ours(rest) if rest else ([], 0.0)
    n_chars = sum(len(d["text"]) for d in both)
    print("\n| filter | docs | CPU s | docs/s per core | MB/s per core |\n| --- | --- | --- | --- | --- |")
    print(f"| datatrove FineWeb chain (4 filters) | {len(both)} | {dt_cpu:.1f} | {len(both) / dt_cpu:.1f} | "
          f"{n_chars / dt_cpu / 1e6:.3f} |")
    print(f"| gristmill quality_v1 | {len(both)} | {our_cpu:.2f} | {len(both) / our_cpu:.0f} | "
          f"{n_chars / our_cpu / 1e6:.2f} |")
    if rest:
        names = ",".join(sorted({d["lang"] for d in rest}))
        print(f"| gristmill quality_v1, {names} (datatrove cannot tokenize them here) | {len(rest)} | {rest_cpu:.2f} | {len(rest) / rest_cpu:.0f} | "
              f"{sum(len(d['text']) for d in rest) / rest_cpu / 1e6:.2f} |")
    print(f"\nspeed-up: {dt_cpu / our_cpu:.1f}x (same {len(both)} documents, one process)")

    ours = {d.doc_id: d.drop_reason for d in ours_docs}
    by_id = {d.doc_id: d for d in ours_docs}
    for title, ids in (("English", [d["id"] for d in both if d["lang"] == "en"]),
                       ("All languages datatrove runs on", [d["id"] for d in both])):
        conf = collections.Counter((ours[i] is None, dt[i] is None) for i in ids)
        same = sum(1 for i in ids if ours[i] and dt[i] and DATATROVE_REASONS.get(ours[i]) == dt[i])
        print(f"\n{title}: {len(ids)} docs, keep/drop agree on "
              f"{(conf[True, True] + conf[False, False]) / max(len(ids), 1):.1%}; "
              f"both drop with the same reason: {same} of {conf[False, False]}")
        print("| | datatrove keeps | datatrove drops |\n| --- | --- | --- |")
        print(f"| gristmill keeps | {conf[True, True]} | {conf[True, False]} |")
        print(f"| gristmill drops | {conf[False, True]} | {conf[False, False]} |")
    en = [d["id"] for d in both if d["lang"] == "en"]
    disagree = [i for i in en if DATATROVE_REASONS.get(ours[i], ours[i]) != dt[i]]
    print(f"\nEnglish documents where the outcome or reason differs ({len(disagree)}):")
    for i in disagree[: args.show]:
        m = by_id[i].meta
        print(f"  {i[:40]:40s} ours={ours[i]} datatrove={dt[i]} words={m['quality_word_count']} "
              f"mean_len={m['quality_mean_word_length']:.2f} alpha={m['quality_alpha_words_ratio']:.3f} "
              f"stop={m['quality_stop_words']} sentences={m['quality_c4_sentences']} "
              f"top2={m['quality_top_2gram_frac']:.3f} line_punct={m['quality_line_punct_ratio']} "
              f"short={m['quality_short_line_ratio']} char_dup={m['quality_char_dup_ratio']} "
              f"list={m['quality_list_ratio']}")
    reasons = collections.Counter(d.drop_reason or "kept" for d in ours_docs + rest_docs)
    print(f"\ngristmill outcomes, all languages: {dict(reasons.most_common())}")
    print(f"datatrove outcomes: {dict(collections.Counter(r or 'kept' for r in dt.values()).most_common())}")
    for d in rest_docs:
        print(f"  {d.language} {d.doc_id[:40]:40s} {d.drop_reason or 'kept'} words={d.meta['quality_word_count']} "
              f"removed_chars={d.meta['quality_c4_removed_char_frac']:.2f} score={d.meta['quality_score']:.3f}")

    same, n, dt_s, our_s = ngram_check(both + rest)
    print(f"\nGopher repetition n-gram values (2-4 top, 5-10 duplicate) equal to datatrove's helpers on {same} of "
          f"{n} documents; helpers {dt_s:.2f} CPU s vs filters.ngrams {our_s:.2f} CPU s = {dt_s / our_s:.1f}x")
    whole = run_whole_chain(both + rest)
    if whole:
        names, cpu, per = whole
        n_docs = len(both) + len(rest)
        pages, ex_cpu = extraction_cpu(args.limit)
        _, lx_cpu = extraction_cpu(args.limit, compiled=False)
        print(f"\nwhole filter chain ({' -> '.join(names)}): {n_docs} docs, {cpu:.2f} CPU s, "
              f"{n_docs / cpu:.0f} docs/s per core, {1000 * cpu / n_docs:.2f} ms/doc ("
              + ", ".join(f"{k} {1000 * v / n_docs:.2f}" for k, v in per.items()) + ")")
        print(f"extraction (trafilatura pass, decoding included): {pages} pages, {ex_cpu:.2f} CPU s, "
              f"{1000 * ex_cpu / pages:.2f} ms/doc; whole chain / extraction per document: "
              f"{(cpu / n_docs) / (ex_cpu / pages):.1%} (target < 20%); load {os.getloadavg()}")
        print(f"same extraction with trafilatura's own XPaths (libxml2, as when the target was set): "
              f"{lx_cpu:.2f} CPU s, {1000 * lx_cpu / pages:.2f} ms/doc; whole chain / that: "
              f"{(cpu / n_docs) / (lx_cpu / pages):.1%}")


if __name__ == "__main__":
    main()
