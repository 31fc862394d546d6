"""The docs' benchmark figures are rendered from ``benchmarks/published.json`` (``make bench-publish``), never
edited by hand."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from benchmarks import ROOT, publish

# It depends on neither twin: make test runs it once (see the `once` marker).
pytestmark = pytest.mark.once


def test_every_published_block_is_what_the_published_figures_render() -> None:
    published = publish.load()
    assert set(published) <= set(publish.SOURCES)
    assert publish.stale(published) == []
    for path, blocks in publish.BLOCKS.items():
        text = (ROOT / path).read_text()
        for name in blocks:
            assert f"<!-- published: {name} -->" in text, path


def test_a_figure_edited_by_hand_is_found() -> None:
    published = {"bench": {"figure": "1.00"}}
    blocks = {"bench": lambda doc: f"figure {doc['figure']}"}
    text = "intro\n<!-- published: bench -->\nfigure 1.00\n<!-- end: bench -->\nafter\n"
    assert publish.render(text, published, blocks) == text
    edited = text.replace("1.00", "0.50")
    assert publish.render(edited, published, blocks) == text
    with pytest.raises(ValueError, match="no '<!-- published: bench -->'"):
        publish.render("no block here\n", published, blocks)


def _write(folder: Path, name: str, doc: Mapping[str, object]) -> None:
    (folder / name).write_text(json.dumps(doc))


def test_a_quick_run_or_one_with_failed_rows_is_not_published(tmp_path: Path) -> None:
    keys = publish.SOURCES["bench"][1]
    run = {key: key for key in keys} | {"groups": [{"rows": [{"name": "a", "status": "ok"}]}]}
    _write(tmp_path, "bench.json", run)
    assert publish._fresh("bench", tmp_path) == {key: key for key in keys}
    _write(tmp_path, "bench.json", run | {"quick": True})
    assert publish._fresh("bench", tmp_path) is None
    _write(tmp_path, "bench.json", run | {"groups": [{"rows": [{"name": "a", "status": "error"}]}]})
    assert publish._fresh("bench", tmp_path) is None
    assert publish._fresh("instructions", tmp_path) is None  # no run
