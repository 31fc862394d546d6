"""Coverage-guided differential fuzzing of the compiled core against its pure twin.

Each target in ``fuzz.targets`` turns libFuzzer's bytes into calls of the core's parsing and
header entry points, with hostile argument shapes, and demands the same outcome from
``fastmw._core`` and ``fastmw._core_py``. ``python -m fuzz`` runs them (see docs/fuzzing.md).
"""
