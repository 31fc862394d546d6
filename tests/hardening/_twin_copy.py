"""A second copy of the ``fastmw`` package bound to the pure core, in this process.

Middlewares bind the core at import, so comparing compiled and pure behaviour through
the public middlewares needs two imports: the normal one and one made with
``FASTMW_NO_EXTENSIONS=1`` under fresh ``sys.modules`` entries (then the original
entries are put back). The copy has its own ContextVars, so each side is self-consistent.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from types import ModuleType

PACKAGE = "fastmw"


def _ours(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


@functools.cache
def pure_fastmw() -> ModuleType:
    """The pure-core copy of ``fastmw`` (imported once per process)."""
    saved = {name: module for name, module in sys.modules.items() if _ours(name)}
    previous = os.environ.get("FASTMW_NO_EXTENSIONS")
    for name in saved:
        del sys.modules[name]
    os.environ["FASTMW_NO_EXTENSIONS"] = "1"
    try:
        copy = importlib.import_module(PACKAGE)
        importlib.import_module(PACKAGE + ".plugins")
    finally:
        if previous is None:
            del os.environ["FASTMW_NO_EXTENSIONS"]
        else:
            os.environ["FASTMW_NO_EXTENSIONS"] = previous
        for name in [name for name in sys.modules if _ours(name)]:
            del sys.modules[name]
        sys.modules.update(saved)
    assert copy.COMPILED is False
    return copy
