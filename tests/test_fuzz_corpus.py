"""The fuzz targets replay their committed seed corpus: the twins agree on every seed.

The fuzzer itself (``make fuzz``, docs/fuzzing.md) needs atheris and a clang build; this
replay needs neither, so an input that once showed a difference stays fixed in ``make test``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest
from fuzz.targets import TARGETS

CORPUS = Path(__file__).resolve().parent.parent / "fuzz" / "corpus"


@pytest.mark.parametrize("target", TARGETS)
def test_seed_corpus_replays_equal_on_both_twins(target: str, twins: tuple[ModuleType, ModuleType]) -> None:
    module = importlib.import_module(f"fuzz.targets.{target}")
    seeds = sorted((CORPUS / target).iterdir())
    assert seeds, f"no seeds in fuzz/corpus/{target}"
    for seed in seeds:
        module.one_input(seed.read_bytes())  # raises Mismatch, naming the call, on a difference
