"""Check the contents and metadata of built artifacts (run by make wheels / wheel-check).

Wheels: the package's .py files, ``py.typed`` and ``_core.pyi``; a compiled wheel also
``_core*.so`` (manylinux-tagged on Linux); never ``.c``, ``.pyx``, ``.html`` or tests.
Sdist: every tracked file under src/, tests/, benchmarks/, the build files, and no
generated C or build products. All: version == fastmw.__version__, ``twine check --strict``.

    python tools/check_dists.py DIR
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath

from _distutil import ROOT, is_pure, project_version, run, wheel_tags

# The type stub and marker users' type checkers need (PEP 561).
WHEEL_REQUIRED = ("fastmw/py.typed", "fastmw/_core.pyi", "fastmw/__init__.py", "fastmw/_core_py/__init__.py")
SDIST_REQUIRED = ("PKG-INFO", "pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "src/fastmw/_core.pyx")
FORBIDDEN_SUFFIXES = (".c", ".pyx", ".html", ".pyc")
SDIST_FORBIDDEN_SUFFIXES = (".c", ".html", ".so", ".pyd", ".pyc")
# Tracked files under these folders must all reach the sdist.
SDIST_TREES = ("src", "tests", "benchmarks", "fuzz", "requirements")


def tracked_files() -> list[str]:
    """Git-tracked files under SDIST_TREES (empty outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--", *SDIST_TREES], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    return out.splitlines()


def check_metadata(name: str, text: str, errors: list[str]) -> None:
    meta = HeaderParser().parsestr(text)
    if meta["Version"] != project_version():
        errors.append(f"{name}: Version {meta['Version']} != fastmw.__version__ {project_version()}")
    if meta["Requires-Python"] != ">=3.10":
        errors.append(f"{name}: Requires-Python is {meta['Requires-Python']!r}")
    if not any(r.startswith("starlette") for r in meta.get_all("Requires-Dist") or []):
        errors.append(f"{name}: no Requires-Dist on starlette")


def check_wheel(path: Path, errors: list[str]) -> None:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        check_metadata(path.name, zf.read(meta).decode(), errors)
    tops = {n.split("/")[0] for n in names}
    extra = {t for t in tops if t != "fastmw" and not t.endswith(".dist-info")}
    if extra:
        errors.append(f"{path.name}: unexpected top-level entries {sorted(extra)} (tests leaked?)")
    errors += [f"{path.name}: missing {req}" for req in WHEEL_REQUIRED if req not in names]
    errors += [f"{path.name}: must not ship {n}" for n in names if n.endswith(FORBIDDEN_SUFFIXES)]
    sources = {n for n in tracked_files() if n.startswith("src/fastmw/") and n.endswith(".py")}
    errors += [f"{path.name}: missing {s}" for s in sources if s.removeprefix("src/") not in names]
    binaries = [n for n in names if PurePosixPath(n).name.startswith("_core.") and n.endswith((".so", ".pyd"))]
    py, abi, plat = wheel_tags(path)
    if is_pure(path):
        if binaries:
            errors.append(f"{path.name}: pure wheel ships {binaries}")
        return
    if len(binaries) != 1:
        errors.append(f"{path.name}: expected one compiled _core, found {binaries}")
    if not (py.startswith("cp3") and abi == py):
        errors.append(f"{path.name}: expected a cp3XX-cp3XX wheel, got {py}-{abi}")
    if sys.platform.startswith("linux") and "manylinux" not in plat:
        errors.append(f"{path.name}: platform tag {plat} is not manylinux (auditwheel repair skipped?)")


def check_sdist(path: Path, errors: list[str]) -> None:
    with tarfile.open(path) as tar:
        members = tar.getnames()
        prefix = f"{path.name.removesuffix('.tar.gz')}/"
        names = {m.removeprefix(prefix) for m in members}
        pkg_info = tar.extractfile(prefix + "PKG-INFO")
        if pkg_info is None:
            errors.append(f"{path.name}: no PKG-INFO")
        else:
            check_metadata(path.name, pkg_info.read().decode(), errors)
    errors += [f"{path.name}: missing {req}" for req in SDIST_REQUIRED if req not in names]
    errors += [f"{path.name}: missing tracked {f}" for f in tracked_files() if f not in names]
    errors += [f"{path.name}: must not ship {n}" for n in sorted(names) if n.endswith(SDIST_FORBIDDEN_SUFFIXES)]
    errors += [f"{path.name}: must not ship {n}" for n in sorted(names) if "__pycache__" in n]
    for wanted in ("src/fastmw/_core.pyi", "tests/conftest.py"):
        if wanted not in names:
            errors.append(f"{path.name}: missing {wanted}")
    if (ROOT / "benchmarks").is_dir() and not any(n.startswith("benchmarks/") for n in names):
        errors.append(f"{path.name}: no benchmarks/")


def main() -> None:
    (folder,) = sys.argv[1:] or [str(ROOT / "dist")]
    artifacts = sorted(Path(folder).glob("fastmw-*.whl")) + sorted(Path(folder).glob("fastmw-*.tar.gz"))
    if not artifacts:
        sys.exit(f"no fastmw artifacts in {folder}")
    errors: list[str] = []
    for path in artifacts:
        (check_wheel if path.suffix == ".whl" else check_sdist)(path, errors)
    if errors:
        sys.exit("artifact check failed:\n  " + "\n  ".join(errors))
    run([sys.executable, "-m", "twine", "check", "--strict", *artifacts])
    print(f"artifact check passed: {', '.join(p.name for p in artifacts)}")


if __name__ == "__main__":
    main()
