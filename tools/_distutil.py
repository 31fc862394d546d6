"""Shared helpers for the packaging tools: interpreters, subprocesses, artifact names."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# CPython minors with compiled wheels: from pyenv (or PATH) on this machine, and from
# Debian's packages in the sid chroot (tools/provision_chroot.sh, `make chroot-pythons`).
MINORS = ("3.10", "3.11", "3.12", "3.13")
CHROOT_MINORS = ("3.14", "3.15")
IN_CHROOT = ROOT / "tools" / "in_chroot.sh"
# Where a chroot keeps a build venv per minor (pip there builds the wheel).
CHROOT_VENV = "/opt/fastmw-build-{minor}"
# Build switches that must not leak from the caller's shell into release builds.
BUILD_SWITCHES = ("FASTMW_NO_EXTENSIONS", "FASTMW_CYTHON_TRACE", "FASTMW_ANNOTATE", "FASTMW_CFLAGS", "PYTHONPATH")
WHEEL_RE = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$")


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment minus fastmw's build switches, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in BUILD_SWITCHES}
    env.update(extra)
    return env


def run(cmd: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command, echoing it; raise on failure (unless ``check=False``)."""
    print("+", " ".join(str(c) for c in cmd), flush=True)
    kwargs.setdefault("check", True)
    return subprocess.run([str(c) for c in cmd], text=True, **kwargs)  # type: ignore[call-overload]


def project_version() -> str:
    """fastmw.__version__, read from the source the way setuptools' attr: does (no import)."""
    text = (ROOT / "src" / "fastmw" / "__init__.py").read_text()
    match = re.search(r'^__version__\s*=\s*"([^"]+)"', text, re.M)
    if not match:
        sys.exit("no __version__ in src/fastmw/__init__.py")
    return match.group(1)


def _pyenv_versions() -> Path | None:
    pyenv = shutil.which("pyenv")
    root = os.environ.get("PYENV_ROOT")
    if not root and pyenv:
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True).stdout.strip()
    return Path(root) / "versions" if root else None


def find_python(minor: str) -> Path | None:
    """The newest CPython ``minor`` (``"3.12"``): pyenv's versions first, then PATH."""
    versions = _pyenv_versions()
    if versions and versions.is_dir():
        found = []
        for entry in versions.iterdir():
            m = re.fullmatch(re.escape(minor) + r"\.(\d+)", entry.name)
            if m and (entry / "bin" / "python").exists():
                found.append((int(m.group(1)), entry / "bin" / "python"))
        if found:
            return max(found)[1]
    on_path = shutil.which(f"python{minor}")
    return Path(on_path) if on_path else None


def interpreter_tag(python: str | Path) -> str:
    """``cp311`` for a CPython 3.11 interpreter; exits for anything else."""
    code = "import sys; print(sys.implementation.name, *sys.version_info[:2])"
    impl, major, minor = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    if impl != "cpython":
        sys.exit(f"{python} is {impl}, compiled wheels are built for CPython only")
    return f"cp{major}{minor}"


def find_pythons() -> dict[str, Path]:
    """Tag -> interpreter for every supported CPython found (``FASTMW_WHEEL_PYTHONS`` overrides)."""
    override = os.environ.get("FASTMW_WHEEL_PYTHONS", "").split()
    if override:
        return {interpreter_tag(p): Path(p) for p in override}
    found = {}
    for minor in MINORS:
        python = find_python(minor)
        if python is None:
            print(f"note: no CPython {minor} found, skipping its wheel", flush=True)
        else:
            found["cp" + minor.replace(".", "")] = python
    return found


def chroot_pythons(chroot: Path) -> dict[str, list[str]]:
    """Tag -> command running that CPython's build venv inside ``chroot`` (made on first use)."""
    found = {}
    for minor in CHROOT_MINORS:
        venv = CHROOT_VENV.format(minor=minor)
        if not (chroot / venv.lstrip("/") / "bin" / "python").exists():
            run([IN_CHROOT, chroot, f"python{minor}", "-m", "venv", venv])
        found["cp" + minor.replace(".", "")] = [str(IN_CHROOT), str(chroot), f"{venv}/bin/python"]
    return found


def wheel_tags(path: Path) -> tuple[str, str, str]:
    """(python tag, abi tag, platform tag) of a wheel file name."""
    m = WHEEL_RE.match(path.name)
    if not m:
        sys.exit(f"not a wheel file name: {path.name}")
    return m["py"], m["abi"], m["plat"]


def is_pure(path: Path) -> bool:
    return path.name.endswith("-py3-none-any.whl")


class Timer:
    """Collects (label, seconds) rows for the closing summary."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float]] = []

    def __call__(self, label: str, start: float) -> None:
        self.rows.append((label, time.monotonic() - start))

    def report(self, title: str) -> None:
        print(f"\n{title}")
        for label, seconds in self.rows:
            print(f"  {seconds:7.1f}s  {label}")
