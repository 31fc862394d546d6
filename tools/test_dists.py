"""Install each artifact alone in a fresh virtualenv and run the test suite against it.

A wheel goes into a venv of the Python its tag names (the pure wheel into the default
one); the sdist goes into a default-Python venv without Cython, so build isolation has
to fetch it, and must still come out compiled. The suite runs from a temporary copy of
tests/ with the project's pytest settings, so src/ is never on sys.path.

A wheel for a CPython of the sid chroot (``--chroot DIR``) is tested by this same script
run inside the chroot, with that CPython.

With ``--no-compiler``, each sdist is instead installed with ``CC=/bin/false``: the
install must stop with setup.py's explanation naming FASTMW_NO_EXTENSIONS=1, and with
that switch set must give the pure package.

    python tools/test_dists.py [--python DEFAULT] [--chroot DIR] ARTIFACT...
    python tools/test_dists.py --no-compiler [--python DEFAULT] SDIST...
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import tomllib
from _distutil import (
    CHROOT_MINORS,
    IN_CHROOT,
    ROOT,
    Timer,
    clean_env,
    find_python,
    is_pure,
    project_version,
    run,
    wheel_tags,
)

# Asked from inside the venv, from the test directory: what would the tests import?
PROBE = (
    "import json, sys, importlib.util, fastmw; "
    "print(json.dumps({'file': fastmw.__file__, 'compiled': fastmw.COMPILED, "
    "'version': fastmw.__version__, 'prefix': sys.prefix, "
    "'cython': importlib.util.find_spec('Cython') is not None}))"
)


def test_requirements(where: Path) -> Path:
    """requirements/test.txt without its ``-r build.txt``: users' venvs have no Cython."""
    lines = (ROOT / "requirements" / "test.txt").read_text().splitlines()
    kept = [line for line in lines if not line.strip().startswith(("-r", "--requirement"))]
    path = where / "test-requirements.txt"
    path.write_text("\n".join(kept) + "\n")
    return path


def pytest_ini(where: Path) -> None:
    """pyproject's [tool.pytest.ini_options] as a pytest.ini (filterwarnings, markers...)."""
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    lines = ["[pytest]"]
    for key, value in options.items():
        if isinstance(value, list):
            lines.append(f"{key} =" + "".join(f"\n    {item}" for item in value))
        else:
            lines.append(f"{key} = {value}")
    (where / "pytest.ini").write_text("\n".join(lines) + "\n")


def python_for(artifact: Path, default: Path) -> Path:
    if artifact.suffix != ".whl" or is_pure(artifact):
        return default
    py = wheel_tags(artifact)[0]  # cp312
    python = find_python(f"{py[2]}.{py[3:]}")
    if python is None:
        sys.exit(f"no interpreter for {artifact.name}")
    return python


def chroot_minor(artifact: Path) -> str | None:
    """``3.14`` for a compiled wheel of a chroot CPython this interpreter is not."""
    if artifact.suffix != ".whl" or is_pure(artifact):
        return None
    py = wheel_tags(artifact)[0]
    minor = f"{py[2]}.{py[3:]}"
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    return minor if minor in CHROOT_MINORS and minor != here and find_python(minor) is None else None


def test_in_chroot(chroot: Path, minor: str, artifact: Path) -> None:
    """This script, run by the chroot's CPython ``minor`` on ``artifact``."""
    pytest_args = os.environ.get("PYTEST_ARGS", "")
    run([IN_CHROOT, chroot, "env", f"PYTEST_ARGS={pytest_args}", f"python{minor}", Path(__file__).resolve(), artifact])


def test_artifact(artifact: Path, default: Path, pytest_args: list[str]) -> None:
    expect_compiled = not is_pure(artifact)
    python = python_for(artifact, default)
    env = clean_env()
    with tempfile.TemporaryDirectory(prefix="fastmw-test-") as tmp_name:
        tmp = Path(tmp_name)
        venv = tmp / "venv"
        run([python, "-m", "venv", venv])
        vpy = venv / "bin" / "python"
        pip = [vpy, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        run([*pip, "-r", test_requirements(tmp)], env=env)
        run_dir = tmp / "run"
        # benchmarks/ too: benchmarks/tests/ (in testpaths) runs every benchmark stack once; the
        # README and docs/: tests check their examples, recipes and published figures; fuzz/
        # for tests/test_fuzz_corpus.py's replay of the seed corpus.
        for tree in ("tests", "benchmarks", "docs", "fuzz"):
            shutil.copytree(ROOT / tree, run_dir / tree, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(ROOT / "README.md", run_dir / "README.md")
        pytest_ini(run_dir)
        if artifact.suffix != ".whl":
            probe_env = {**env, "PYTHONNOUSERSITE": "1"}
            out = run(
                [vpy, "-c", "import importlib.util as u; print(u.find_spec('Cython') is None)"],
                env=probe_env,
                capture_output=True,
            ).stdout
            if out.strip() != "True":
                sys.exit("Cython is preinstalled in the sdist venv: build isolation is not exercised")
        # --no-cache-dir: pip caches wheels it builds from a named sdist; a stale one
        # from an earlier run would hide a broken sdist build.
        run([*pip, "--no-cache-dir", artifact], env=env)
        facts = json.loads(run([vpy, "-c", PROBE], cwd=run_dir, env=env, capture_output=True).stdout)
        print(f"  installed: {facts}", flush=True)
        problems = []
        if not Path(facts["file"]).resolve().is_relative_to(Path(facts["prefix"]).resolve()):
            problems.append(f"fastmw imported from {facts['file']}, not from the venv")
        if facts["compiled"] is not expect_compiled:
            problems.append(f"COMPILED is {facts['compiled']}, expected {expect_compiled}")
        if facts["version"] != project_version():
            problems.append(f"version {facts['version']} != {project_version()}")
        if facts["cython"]:
            problems.append("Cython leaked into the runtime venv")
        if problems:
            sys.exit(f"{artifact.name}: " + "; ".join(problems))
        if expect_compiled:
            env["FASTMW_REQUIRE_COMPILED"] = "1"  # conftest refuses a silent fallback
        run([vpy, "-m", "pytest", "-p", "no:cacheprovider", "-q", *pytest_args], cwd=run_dir, env=env)


def test_without_compiler(sdist: Path, python: Path) -> None:
    """The sdist installed where the C compiler fails: a refusal that names the way out."""
    env = {**clean_env(), "CC": "/bin/false", "PYTHONNOUSERSITE": "1"}
    with tempfile.TemporaryDirectory(prefix="fastmw-nocc-") as tmp_name:
        venv = Path(tmp_name) / "venv"
        run([python, "-m", "venv", venv])
        vpy = venv / "bin" / "python"
        # The build requirements preinstalled, without isolation: what is tested is setup.py
        # meeting a compiler that fails, not pip fetching setuptools and Cython twice.
        install = [vpy, "-m", "pip", "install", "--disable-pip-version-check"]
        run([*install, "-q", "-r", ROOT / "requirements" / "build.txt"])
        pip = [*install, "--no-cache-dir", "--no-build-isolation", sdist]
        refused = run(pip, env=env, capture_output=True, check=False)
        output = refused.stdout + refused.stderr
        expected = ("cannot build the compiled core", "FASTMW_NO_EXTENSIONS=1 pip install")
        if refused.returncode == 0 or not all(text in output for text in expected):
            sys.exit(f"{sdist.name} without a compiler: exit {refused.returncode}, expected the refusal\n{output}")
        print("  refused, naming FASTMW_NO_EXTENSIONS=1", flush=True)
        run(pip, env={**env, "FASTMW_NO_EXTENSIONS": "1"})
        facts = json.loads(run([vpy, "-c", PROBE], cwd=tmp_name, env=env, capture_output=True).stdout)
        if facts["compiled"] or facts["version"] != project_version():
            sys.exit(f"{sdist.name} with FASTMW_NO_EXTENSIONS=1 and no compiler: {facts}")
        print(f"  FASTMW_NO_EXTENSIONS=1: installed the pure package {facts['version']}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--python",
        type=Path,
        default=Path(shutil.which("python3") or sys.executable),
        help="interpreter for the sdist and the pure wheel (default: python3 on PATH)",
    )
    parser.add_argument("--chroot", type=Path, help="sid chroot whose CPythons test their wheels")
    parser.add_argument("--no-compiler", action="store_true", help="install each sdist with CC=/bin/false")
    parser.add_argument("artifacts", nargs="+", type=Path)
    args = parser.parse_args()
    pytest_args = os.environ.get("PYTEST_ARGS", "").split()
    timer = Timer()
    total = time.monotonic()
    for artifact in args.artifacts:
        start = time.monotonic()
        print(f"\n=== {artifact.name}", flush=True)
        minor = chroot_minor(artifact)
        if args.no_compiler:
            if artifact.suffix == ".whl":
                sys.exit(f"--no-compiler takes sdists, not {artifact.name}")
            test_without_compiler(artifact.resolve(), args.python)
        elif minor is None:
            test_artifact(artifact.resolve(), args.python, pytest_args)
        elif args.chroot is None:
            sys.exit(f"{artifact.name}: no CPython {minor} here; its wheel is tested in the chroot (--chroot DIR)")
        else:
            test_in_chroot(args.chroot.resolve(), minor, artifact.resolve())
        timer(artifact.name, start)
    timer("total", total)
    timer.report("tested:")


if __name__ == "__main__":
    main()
