"""Two independent copies of the fastmw package in one process: compiled and pure.

Middlewares bind ``fastmw._impl.core`` when they are imported, so comparing the
compiled and pure cores at the middleware level needs a second copy of the whole
package imported under ``FASTMW_NO_EXTENSIONS=1``. The copy is loaded with the
original ``fastmw*`` entries moved out of ``sys.modules`` and then put back, so
nothing else in the process notices. Caveat: a copy module that imports a fastmw
module lazily (inside a function) will get the original's module, not its own.
"""

from __future__ import annotations

import importlib
import os
import sys
from functools import cache
from types import ModuleType

ENV_VAR = "FASTMW_NO_EXTENSIONS"
PACKAGE = "fastmw"
# Submodules imported eagerly in both copies (missing ones are skipped: other branches add them).
SUBMODULES = ("fastmw._impl", "fastmw._core_py", "fastmw.plugins", "fastmw.middleware", "fastmw.ctx")


def _is_fastmw(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


def _import_all() -> ModuleType:
    package = importlib.import_module(PACKAGE)
    for name in SUBMODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
    return package


@cache
def original() -> ModuleType:
    """The fastmw package as imported normally (compiled when the extension is built)."""
    return _import_all()


@cache
def pure_copy() -> ModuleType:
    """A second, independent fastmw package forced onto the pure-Python core."""
    original()
    saved = {name: module for name, module in sys.modules.items() if _is_fastmw(name)}
    saved_env = os.environ.get(ENV_VAR)
    for name in saved:
        del sys.modules[name]
    os.environ[ENV_VAR] = "1"
    try:
        copy = _import_all()
    finally:
        for name in [name for name in sys.modules if _is_fastmw(name)]:
            del sys.modules[name]
        sys.modules.update(saved)
        if saved_env is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = saved_env
    return copy
