"""The compiled core needs nothing but the Python C API and ISO C, so it builds anywhere
CPython does: every symbol the built extension leaves for the loader to resolve is one
of those (checked on ELF platforms with ``nm -D --undefined-only``)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

# The C API: everything the interpreter exports is spelled Py*/_Py* (public and private).
C_API = re.compile(r"^_?Py[A-Z_a-z]")
# ISO C (C11) library functions a Cython module and fastmw's own C may call, by header.
ISO_C_BY_HEADER = {
    "string.h": "memcpy memmove memset memcmp memchr strlen strcmp strncmp strchr strrchr strstr strcpy strncpy",
    "stdlib.h": "malloc calloc realloc free abort strtol strtoul strtod qsort bsearch",
    "stdio.h": "printf fprintf snprintf sprintf vsnprintf fputs puts putchar fflush stderr stdout",
    "math.h": "floor ceil fabs fmod rint round lround llround trunc modf frexp ldexp pow sqrt exp log log10",
    "assert.h": "__assert_fail",  # glibc's implementation of assert()
}
ISO_C = frozenset(name for names in ISO_C_BY_HEADER.values() for name in names.split())
# What the toolchain itself adds to any shared object: C runtime start-up hooks (weak),
# the stack protector's failure handler, and glibc's *_chk fortified twins of ISO functions.
TOOLCHAIN = frozenset(
    {"__cxa_finalize", "__gmon_start__", "_ITM_deregisterTMCloneTable", "_ITM_registerTMCloneTable", "__stack_chk_fail"}
)
FORTIFIED = re.compile(r"^__(\w+)_chk$")


def undefined_symbols(path: Path) -> set[str]:
    out = subprocess.run(["nm", "-D", "--undefined-only", str(path)], capture_output=True, text=True, check=True).stdout
    # "                 U memcpy@GLIBC_2.14" / "                 w __gmon_start__"
    return {line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()}


def foreign(symbol: str) -> bool:
    if C_API.match(symbol) or symbol in ISO_C or symbol in TOOLCHAIN:
        return False
    fortified = FORTIFIED.match(symbol)
    return not (fortified and fortified.group(1) in ISO_C)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF dynamic symbols (nm -D): Linux only")
def test_compiled_core_needs_only_the_c_api_and_iso_c(twins: tuple[ModuleType, ModuleType]) -> None:
    if shutil.which("nm") is None:
        pytest.fail("nm (binutils) is needed to read the extension's symbols")
    compiled, _ = twins
    assert compiled.__file__ is not None
    symbols = undefined_symbols(Path(compiled.__file__))
    assert any(C_API.match(s) for s in symbols), f"no C-API symbol found: is this the extension? {sorted(symbols)}"
    assert sorted(filter(foreign, symbols)) == []


@pytest.mark.parametrize(
    ("symbol", "allowed"),
    [
        ("PyTime_Monotonic", True),
        ("_PyTime_GetMonotonicClock", True),
        ("memcpy", True),
        ("__memcpy_chk", True),
        ("clock_gettime", False),
        ("pthread_atfork", False),
        ("getpid", False),
        ("__clock_gettime_chk", False),
        ("pytime", False),
    ],
)
def test_the_allow_list_tells_posix_from_iso(symbol: str, allowed: bool) -> None:
    assert foreign(symbol) is not allowed
