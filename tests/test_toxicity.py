"""URL blocklist, LDNOOBW word lists and the toxicity classifier, on real entries and text."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from filters import blocklist
from filters.blocklist import UrlFilter, UrlFilterConfig, ensure_tables, parent_domains, split_url
from filters.toxicity import BadWords, ToxicityConfig, ToxicityFilter, toxic_probability
from pipeline.config import ConfigError, build_section
from pipeline.document import Document

SHARED = Path(__file__).resolve().parents[2] / "shared"
DATA = Path(__file__).resolve().parent / "data"


def doc(url: str | None = None, text: str = "", language: str | None = None) -> Document:
    return Document(doc_id="d", warc_path="-", warc_offset=0, record_type="response", url=url,
                    text=text, language=language)


def run(stage, docs: list[Document]) -> list[Document]:
    stage.ensure_setup()
    stage.process_batch(docs)
    return docs


# ------------------------------------------------------------------------- URL blocklist
@pytest.fixture(scope="module")
def url_filter(tmp_path_factory) -> UrlFilter:
    """The real datatrove list (4.56M domains), hashed into a per-run cache (~4 s)."""
    return UrlFilter(UrlFilterConfig(cache_dir=str(tmp_path_factory.mktemp("cache"))))


def test_blocks_real_listed_domains_and_their_subdomains(url_filter):
    # Entries of datatrove's url_filterblacklistsv0_3_0 `domains` file.
    urls = ["https://pornhub.com/", "http://0-porno.com/index.html", "https://xvids101.blogspot.fr/2020/",
            "https://www.pornhub.com/view_video.php?v=1", "https://de.0-porno.com/a/b",
            "http://WWW.Javs4All.Blogspot.co.uk:8080/x", "https://some.site.xxx/"]
    docs = run(url_filter, [doc(u) for u in urls])
    assert [d.drop_reason for d in docs] == ["url_blocklist_domain"] * len(urls)
    assert [d.meta["url_blocked_match"] for d in docs] == [
        "pornhub.com", "0-porno.com", "xvids101.blogspot.fr", "pornhub.com", "0-porno.com",
        "javs4all.blogspot.co.uk", "xxx"]
    assert {d.meta["url_blocked_category"] for d in docs} == {"datatrove_ut1"}
    assert all(d.drop_stage == "url_blocklist_v1" for d in docs)


def test_blocks_listed_url_prefixes_and_keeps_normal_urls(url_filter):
    # "1000sexblog.blogspot.com/2015" is an entry of the `urls` file; its host is not listed.
    listed, normal = doc("http://1000sexblog.blogspot.com/2015/03/post.html"), [
        doc("https://en.wikipedia.org/wiki/Sex_education"), doc("https://www.bbc.co.uk/news/world"),
        doc("https://www.essex.ac.uk/"), doc("https://github.com/huggingface/datatrove"),
        doc("http://1000sexblog.blogspot.com/2016/01/"), doc(None)]
    run(url_filter, [listed, *normal])
    assert listed.drop_reason == "url_blocklist_url"
    assert listed.meta["url_blocked_match"] == "1000sexblog.blogspot.com/2015"
    assert [d.kept for d in normal] == [True] * len(normal)
    assert all(d.meta["url_blocked_category"] is None for d in normal)


def test_url_word_rules(url_filter):
    hard, soft, sub, ok = (doc("https://example.com/big-tits-gallery"), doc("https://example.com/naked-lingerie"),
                           doc("https://example.com/free-sex-now"), doc("https://example.com/sexual-health-advice"))
    run(url_filter, [hard, soft, sub, ok])
    assert (hard.drop_reason, hard.meta["url_blocked_match"]) == ("url_banned_word", "banned_word:tits")
    assert soft.drop_reason == "url_soft_banned_words"
    assert (sub.drop_reason, sub.meta["url_blocked_match"]) == ("url_banned_subword", "banned_subword:freesex")
    assert ok.kept  # one soft word ("sexual") is below the threshold of 2


def ut1_folder(root: Path) -> Path:
    """A UT1-layout folder (category/domains, category/urls) with real UT1-style entries."""
    (root / "adult").mkdir(parents=True)
    (root / "adult" / "domains").write_text("# comment\npornhub.com\nexample-adult.net\nfree.fr.example\n")
    (root / "adult" / "urls").write_text("blogger.example.org/nsfw\n")
    (root / "gambling").mkdir()
    (root / "gambling" / "domains").write_text("pokerstars.com\nexample-adult.net\n")
    return root


def test_cache_is_built_once_and_reused(tmp_path, monkeypatch):
    cfg = UrlFilterConfig(source=str(ut1_folder(tmp_path / "ut1")), categories=("adult", "gambling"),
                          cache_dir=str(tmp_path / "cache"), url_words=False)
    folder = ensure_tables(cfg)
    assert json.loads((folder / "meta.json").read_text())["n_domains"] == 4  # one domain in both
    stamp = (folder / "domains.npy").stat().st_mtime_ns

    def no_rebuild(*a, **k):
        raise AssertionError("tables were rebuilt although the cache exists")

    monkeypatch.setattr(blocklist, "build_tables", no_rebuild)
    f = UrlFilter(cfg)
    docs = run(f, [doc("https://www.pokerstars.com/"), doc("http://example-adult.net/"),
                   doc("http://blogger.example.org/nsfw/page"), doc("https://example.org/")])
    assert f.table_dir == folder and (folder / "domains.npy").stat().st_mtime_ns == stamp
    assert isinstance(f._domains.hashes, np.memmap)  # shared through the page cache
    assert [d.meta["url_blocked_category"] for d in docs] == ["gambling", "adult", "adult", None]
    assert [d.drop_reason for d in docs] == ["url_blocklist_domain", "url_blocklist_domain",
                                             "url_blocklist_url", None]
    # Another category set is another cache entry.
    assert blocklist.cache_key(UrlFilterConfig(source=cfg.source, categories=("adult",))) != blocklist.cache_key(cfg)
    assert not list((tmp_path / "cache" / "url_blocklist").glob(".*"))  # no temp folder left


def test_datatrove_mode_checks_only_host_and_registered_domain(tmp_path):
    root = tmp_path / "ut1"
    (root / "adult").mkdir(parents=True)
    (root / "adult" / "domains").write_text("sub.example.com\nxxx\n")
    urls = ["https://a.sub.example.com/", "https://sub.example.com/", "https://site.xxx/"]
    base = {"source": str(root), "categories": ("adult",), "cache_dir": str(tmp_path / "c"), "url_words": False}
    parents = run(UrlFilter(UrlFilterConfig(**base)), [doc(u) for u in urls])
    exact = run(UrlFilter(UrlFilterConfig(**base, match_parent_domains=False)), [doc(u) for u in urls])
    assert [d.kept for d in parents] == [False, False, False]
    # datatrove's rule: fqdn or registered domain only, so a.sub.example.com and site.xxx pass.
    assert [d.kept for d in exact] == [True, False, True]


def test_allow_and_extra_domains(url_filter, tmp_path):
    cfg = UrlFilterConfig(cache_dir=url_filter.config.cache_dir, allow_domains=("pornhub.com",),
                          extra_domains=("spam.example",))
    allowed, extra = run(UrlFilter(cfg), [doc("https://www.pornhub.com/"), doc("http://x.spam.example/")])
    assert allowed.kept and allowed.meta["url_blocked_category"] is None
    assert (extra.drop_reason, extra.meta["url_blocked_category"]) == ("url_blocklist_domain", "extra")


def test_url_parsing():
    assert split_url("HTTP://user:pw@Sub.Example.COM.:8080/a/b?q=1#f") == ("sub.example.com", "/a/b")
    assert split_url("example.com") == ("example.com", "")
    assert parent_domains("a.b.co.uk") == ["a.b.co.uk", "b.co.uk", "co.uk", "uk"]
    assert parent_domains("10.0.0.1") == ["10.0.0.1"]


def test_url_config_validation(tmp_path):
    with pytest.raises(ValueError, match="soft_word_threshold"):
        UrlFilterConfig(soft_word_threshold=0).validate()
    with pytest.raises(ValueError, match="neither 'datatrove' nor a folder"):
        UrlFilterConfig(source=str(tmp_path / "missing")).validate()
    with pytest.raises(ValueError, match=r"available: \['adult', 'gambling'\]"):
        UrlFilterConfig(source=str(ut1_folder(tmp_path / "ut1")), categories=("adult", "porn")).validate()
    with pytest.raises(ConfigError, match=r"\[url\].*bare domain"):
        build_section("url", {"extra_domains": ["http://x.com/"]}, "t.toml")


# ------------------------------------------------------------------------- word lists
def test_english_whole_words_only():
    en = BadWords("en")
    text = "Scunthorpe and Essex: a cockpit class for the assassin. What an asshole, fuck this. Sex ed."
    assert en.matches(text) == ["asshole", "fuck", "sex"]
    count, ratio = en.count_and_ratio(text)
    assert count == 3 and ratio == pytest.approx(3 / 16)  # 16 words


def test_german_whole_words_only():
    de = BadWords("de")
    # "Churer" contains "hure", "Fickendorf" contains "ficken", "scheißegal" contains "scheiße".
    assert de.matches("Der Churer Stadtrat aus Fickendorf findet das scheißegal.") == []
    assert de.matches("Du Arschloch, das ist doch Scheiße!") == ["arschloch", "scheiße"]


def test_chinese_substrings_and_exclusions():
    zh = BadWords("zh")
    assert zh.matches("你他妈的傻逼") == ["他妈的", "傻逼"]
    # 口交 inside 接口交互 (interface interaction) and 性 in 性能 are normal words.
    assert zh.matches("模型通过接口交互提升性能和可靠性交流") == []
    assert BadWords("zh", use_exclusions=False).matches("通过接口交互提升性能") == ["口交", "性"]


def test_chinese_seeds_not_flagged():
    seeds = sorted((SHARED / "seeds").glob("*.txt"))
    if not seeds:
        pytest.skip("../shared/seeds not found: the Chinese seed articles live beside the project")
    f = ToxicityFilter()
    docs = run(f, [doc(text=p.read_text(encoding="utf-8"), language="zh") for p in seeds])
    assert [d.meta["toxicity_badword_count"] for d in docs] == [0] * len(seeds)
    assert all(d.kept for d in docs)


# ------------------------------------------------------------------------- classifier + filter
@pytest.fixture(scope="module")
def comments() -> dict[str, str]:
    # Two held-out comments of toxicity_nonfuzzed_testset.csv; provenance in the file itself.
    return json.loads((DATA / "toxicity_comments.json").read_text(encoding="utf-8"))


def test_preprocess_equals_its_regex_definition_on_real_pages():
    """The classifier's input is built by a split and two joins; it must be the string the
    definition gives (each punctuation character spaced, whitespace collapsed) on all 990 pages'
    HTML (punctuation-dense), 75 languages of Leipzig sentences and odd whitespace."""
    import gzip
    import re

    from filters.toxicity import preprocess

    pages = sorted((SHARED / "corpus" / "pages" / "trafilatura" / "html").glob("*.gz"))
    if len(pages) != 990:
        pytest.skip("needs ../shared/corpus/pages/trafilatura/html (the shared test material)")
    sentences = (SHARED / "corpus" / "lid" / "sentences.tsv").read_text(encoding="utf-8")
    texts = [gzip.open(p).read().decode("utf-8", "replace")[:20000] for p in pages]
    texts += [sentences[i : i + 20000] for i in range(0, len(sentences), 20000)]
    texts += ["", "  ", "İstanbul's\u2028ÉTÉ—l'été…\x1c«a»", "a\u00a0b\tc\n\nd'", "''", "x'-'y"]
    punct = re.compile(r"([^\w\s'])")
    for text in texts:
        assert preprocess(text) == " ".join(punct.sub(r" \1 ", text.lower()).split())


def test_shared_lowercase_gives_the_classifier_the_same_input(comments):
    """The stage lowers each text once for the classifier and the word lists; over the length
    limit the classifier still reads text[:limit].lower(), which differs from text.lower()[:limit]
    when a character before the cut lowers to two ("İ")."""
    from filters.toxicity import MAX_SCORE_CHARS

    long_text = "İ" * 10 + (comments["toxic"] + " ") * (MAX_SCORE_CHARS // len(comments["toxic"]) + 1)
    texts = [comments["toxic"], comments["benign"], long_text, "", "İİ x"]
    assert len(long_text) > MAX_SCORE_CHARS
    assert long_text[:MAX_SCORE_CHARS].lower() != long_text.lower()[:MAX_SCORE_CHARS]
    assert toxic_probability(texts, lowered=[t.lower() for t in texts]) == toxic_probability(texts)


def test_classifier_ranks_toxic_above_benign(comments):
    toxic, benign = toxic_probability([comments["toxic"], comments["benign"]])
    assert toxic > 0.9
    assert benign < 0.1


def test_classifier_held_out_auc():
    if not (SHARED / "corpus" / "toxicity").is_dir():
        pytest.skip("../shared/corpus/toxicity not found: the labelled comments live beside the project")
    import importlib.util

    # Loaded by path: putting bench/ on sys.path would shadow `filters` and `tokenize`.
    spec = importlib.util.spec_from_file_location(
        "train_toxicity", Path(__file__).resolve().parents[1] / "bench" / "train_toxicity.py")
    trainer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(trainer)
    load_labelled, roc_auc, split = trainer.load_labelled, trainer.roc_auc, trainer.split
    _, test = split(load_labelled(SHARED / "corpus" / "toxicity"))
    y = np.array([r[1] for r in test])
    assert roc_auc(y, np.array(toxic_probability([r[0] for r in test]))) > 0.85


def test_drop_reasons_and_stored_scores(comments):
    words_first = ToxicityFilter()
    classifier_only = ToxicityFilter(ToxicityConfig(max_badword_ratio=1.0))
    a, b = run(words_first, [doc(text=comments["toxic"], language="en"), doc(text=comments["benign"], language="en")])
    c, d = run(classifier_only, [doc(text=comments["toxic"], language="en"), doc(text=comments["toxic"], language="de")])
    assert a.drop_reason == "toxicity_badwords" and a.drop_stage == "toxicity_v1"
    assert b.kept and c.drop_reason == "toxicity_classifier"
    assert d.kept  # the English classifier does not decide for German documents...
    assert d.meta["toxicity_score"] > 0.9  # ...but its score is stored
    for x in (a, b, c, d):
        assert set(x.meta) == set(ToxicityFilter.columns)
    assert a.meta["toxicity_badword_count"] >= 3 and b.meta["toxicity_badword_count"] == 0


def test_classifier_needs_a_bad_word_by_default(comments):
    # A normal sentence the classifier alone scores as toxic ("you" + short = toxic, to it).
    gated = ToxicityFilter(ToxicityConfig())
    ungated = ToxicityFilter(ToxicityConfig(score_requires_badword=False))
    (a,) = run(gated, [doc(text=comments["benign_short"], language="en")])
    (b,) = run(ungated, [doc(text=comments["benign_short"], language="en")])
    assert a.meta["toxicity_score"] > 0.9 and a.meta["toxicity_badword_count"] == 0
    assert a.kept and b.drop_reason == "toxicity_classifier"


def test_toxicity_config_validation():
    with pytest.raises(ValueError, match="max_score must be within"):
        ToxicityConfig(max_score=1.5).validate()
    with pytest.raises(ValueError, match="min_badwords"):
        ToxicityConfig(min_badwords=0).validate()
    with pytest.raises(ValueError, match=r"no LDNOOBW list for \['xx'\]"):
        ToxicityConfig(languages=("en", "xx")).validate()
    with pytest.raises(ConfigError, match=r"\[toxicity\] max_badword_ratio"):
        build_section("toxicity", {"max_badword_ratio": 2.0}, "t.toml")
