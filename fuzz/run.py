"""One fuzz target under atheris, in a process started by ``python -m fuzz`` (which sets the
sanitizer runtime, the sanitized build and the libFuzzer options):

    python -m fuzz.run TARGET [libFuzzer arguments: corpus dirs, -max_total_time=N, crash files]
"""

from __future__ import annotations

import importlib
import sys

import atheris


def main(argv: list[str]) -> None:
    target = argv[1]
    # The pure twin's bytecode is instrumented too: its branches guide the fuzzer as well as
    # the compiled core's edges (whose build carries libFuzzer's coverage instrumentation).
    with atheris.instrument_imports(include=["fastmw._core_py", "fuzz"]):
        module = importlib.import_module(f"fuzz.targets.{target}")
    import fastmw._core

    if ".so" not in (fastmw._core.__file__ or ""):
        raise SystemExit(f"fastmw._core is not the compiled core: {fastmw._core.__file__}")
    # libFuzzer re-runs argv[0] through the shell for -merge (and -fork): give it the whole
    # command that runs this target (it joins its arguments with spaces, unquoted).
    command = f"{sys.executable} -m fuzz.run {target}"
    atheris.Setup([command, *argv[2:]], module.one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
