"""fastmw benchmark suite (outside the default test run): ``make bench`` and the commands in README.md."""

import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Every run writes here (ignored by git): a run leaves the tree clean.
RESULTS_DIR = ROOT / "build" / "bench"

# In a side's key: measured with sentry-sdk installed and initialised (the ``sentry`` group).
WITH_SENTRY = "+sentry"

# The packages whose versions a results file records.
PACKAGES = ("fastmw", "starlette", "starlette-context", "asgi-correlation-id", "uvloop", "Cython")
NOT_INSTALLED = "n/a"


def without_sentry() -> None:
    """Measure without sentry-sdk, as before it joined the test requirements (asgi-correlation-id's
    middleware tags Sentry per request where it is importable); the ``sentry`` group keeps it."""
    if not any(WITH_SENTRY in arg for arg in sys.argv):
        sys.modules.setdefault("sentry_sdk", None)  # type: ignore[arg-type]


def init_sentry() -> None:
    """sentry-sdk initialised as an app would (a DSN that is never contacted: no event is made)."""
    import sentry_sdk

    sentry_sdk.init(dsn="http://public@127.0.0.1:9/1", default_integrations=False, auto_enabling_integrations=False)


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return ""
    return done.stdout.strip()


def revision() -> dict[str, object]:
    """The git revision measured, and whether tracked files differed from it."""
    return {
        "git_revision": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
    }


def versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """The installed version of each of ``packages`` (``NOT_INSTALLED`` for a missing one)."""
    found = {}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = NOT_INSTALLED
    return found
