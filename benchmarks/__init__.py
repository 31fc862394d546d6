"""fastmw benchmark suite (outside the default test run): ``make bench`` and the commands in README.md."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Every run writes here (ignored by git): a run leaves the tree clean.
RESULTS_DIR = ROOT / "build" / "bench"


def without_sentry() -> None:
    """Measure without sentry-sdk, as before it joined the test requirements: where it is
    importable, fastmw's and asgi-correlation-id's middlewares both tag Sentry per request."""
    sys.modules.setdefault("sentry_sdk", None)  # type: ignore[arg-type]


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
