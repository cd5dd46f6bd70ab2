"""One registry: stages and readers are registered where they live, and everything else derives
from it: config sections, the default order, format limits, and the error for an unknown name."""

from __future__ import annotations

import re
import textwrap

import pytest
from conftest import REPO

from pipeline import registry
from pipeline.config import ConfigError, load_config, sections
from pipeline.document import Document


def test_each_stage_is_registered_where_its_class_lives():
    where = {k: e.cls.__module__ for k, e in registry.stages().items()}
    assert where["length"] == "filters.length" and where["url"] == "filters.blocklist"
    assert where["extract"] == "pipeline.extract" and where["quality"] == "filters.quality"
    assert registry.readers()["warc"].cls.__module__ == "pipeline.readers.warc"


def test_sections_and_default_order_derive_from_the_registry():
    valid = sections()
    for key, entry in {**registry.stages(), **registry.readers()}.items():
        assert valid[key] is entry.config_cls
    assert load_config().pipeline.stages == registry.default_stages()
    orders = [registry.stages()[k].order for k in registry.default_stages()]
    assert orders == sorted(orders)
    assert not registry.applies("extract", "jsonl") and registry.applies("quality", "jsonl")


def test_unknown_stage_error_lists_every_registered_one(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[pipeline]\nstages = ['lenght']\n")
    with pytest.raises(ConfigError) as exc:
        load_config(cfg)
    listed = re.search(r"valid: \[(.*)\]", str(exc.value)).group(1)
    assert {s.strip(" '") for s in listed.split(",")} == set(registry.stages())


def test_readme_example_filter_is_one_edit_that_works(tmp_path, monkeypatch):
    # The README's "Adding a filter" block, run as written: registering makes it a stage with a
    # config section, usable from [pipeline] stages, that scores and drops with a reason.
    readme = (REPO / "README.md").read_text()
    block = re.search(r"```python\n# filters/shouting.py\n(.*?)```", readme, re.S).group(1)
    monkeypatch.setattr(registry, "_STAGES", dict(registry.stages()))
    namespace: dict = {}
    exec(compile(textwrap.dedent(block), "filters/shouting.py", "exec"), namespace)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[pipeline]\nstages = ['length', 'shouting']\n[shouting]\nmax_upper_ratio = 0.3\n")
    config = load_config(cfg)
    [length, shouting] = registry.build_stages(config)
    doc = Document("s/0", "x.warc", 0, "response", text="THIS IS ALL SHOUTING " * 20)
    shouting.process_batch([doc])
    assert doc.drop_reason == "shouting_upper_ratio" and doc.meta["shouting_upper_ratio"] == 1.0
