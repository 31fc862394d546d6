"""Runs the fuzz targets, one libFuzzer process each, against the sanitized core.

    python -m fuzz [--seconds N] [--target NAME ...] [--build DIR]
    python -m fuzz --target NAME --reproduce FILE
    python -m fuzz --merge [--target NAME ...]

``make fuzz`` builds the core with AddressSanitizer, UBSan and libFuzzer's coverage
instrumentation into ``build/fuzz`` (with the sanitizer runtime merged with libFuzzer) and
runs this. Each target's new inputs go to ``build/fuzz-work/corpus/<target>`` (kept when the
core is rebuilt), read together with the seeds in ``fuzz/corpus/<target>``; a failing input
is written to ``build/fuzz-work/artifacts/``, the logs to ``build/fuzz-work/logs/``. The
process exits non-zero if any target failed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from fuzz.targets import MAX_LEN, TARGETS

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "fuzz" / "corpus"
RUNTIME = "asan_with_fuzzer.so"
# A single input taking longer than this is a hang (libFuzzer reports it as a failure).
INPUT_TIMEOUT = 10
# libFuzzer's closing statistics (-print_final_stats=1).
STAT = re.compile(r"^stat::(\w+):\s+(\d+)", re.MULTILINE)
COVERAGE = re.compile(r"cov: (\d+) ft: (\d+) corp: (\d+)")
TAIL_LINES = 60


def sanitized_env(build: Path) -> dict[str, str]:
    """The environment of a fuzzing process: the sanitized core first on the path, the merged
    ASan+UBSan+libFuzzer runtime preloaded, every allocation through the sanitizer."""
    runtime = build / RUNTIME
    if not runtime.is_file():
        raise SystemExit(f"{runtime} is missing: run `make fuzz` (it builds the sanitized core)")
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([str(build), str(ROOT)]),
        LD_PRELOAD=str(runtime),
        PYTHONMALLOC="malloc",
        FASTMW_REQUIRE_COMPILED="1",
        # The interpreter is not instrumented and keeps memory to exit: leaks are not looked for.
        ASAN_OPTIONS="detect_leaks=0:allocator_may_return_null=1:handle_abort=1",
        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1",
    )
    env.pop("FASTMW_NO_EXTENSIONS", None)
    return env


def fuzz_one(target: str, seconds: int, build: Path, work: Path) -> tuple[int, dict[str, int], str]:
    """Fuzz ``target`` for ``seconds``; its exit status, final statistics and log tail."""
    corpus = work / "corpus" / target
    artifacts = work / "artifacts"
    logs = work / "logs"
    for folder in (corpus, artifacts, logs):
        folder.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "fuzz.run",
        target,
        str(corpus),
        str(SEEDS / target),
        f"-max_total_time={seconds}",
        f"-max_len={MAX_LEN[target]}",
        f"-timeout={INPUT_TIMEOUT}",
        f"-artifact_prefix={artifacts}/{target}-",
        "-print_final_stats=1",
    ]
    log = logs / f"{target}.log"
    with log.open("wb") as out:
        status = subprocess.run(command, env=sanitized_env(build), stdout=out, stderr=subprocess.STDOUT).returncode
    text = log.read_text("utf-8", "replace")
    stats = {name: int(value) for name, value in STAT.findall(text)}
    found = COVERAGE.findall(text)
    if found:
        stats["cov"], stats["ft"], stats["corpus"] = map(int, found[-1])
    return status, stats, "\n".join(text.splitlines()[-TAIL_LINES:])


def run_all(targets: list[str], seconds: int, build: Path, work: Path) -> int:
    share = max(1, seconds // len(targets))
    failed = []
    print(f"{'target':<12} {'status':<7} {'execs':>9} {'execs/s':>8} {'cov':>6} {'ft':>6} {'corpus':>6}")
    for target in targets:
        started = time.monotonic()
        status, stats, tail = fuzz_one(target, share, build, work)
        elapsed = time.monotonic() - started
        execs = stats.get("number_of_executed_units", 0)
        rate = stats.get("average_exec_per_sec", 0)
        verdict = "ok" if status == 0 else "FAILED"
        print(
            f"{target:<12} {verdict:<7} {execs:>9} {rate:>8} {stats.get('cov', 0):>6} "
            f"{stats.get('ft', 0):>6} {stats.get('corpus', 0):>6}  ({elapsed:.0f} s with start-up)",
            flush=True,
        )
        if status != 0:
            failed.append(target)
            log = work / "logs" / f"{target}.log"
            print(f"--- {target}: exit status {status}; the end of {log}:\n{tail}\n---", flush=True)
    print(f"fuzz: {len(targets) - len(failed)} passed, {len(failed)} failed")
    if failed:
        print(f"fuzzing failed: {', '.join(failed)} (reproduce: python -m fuzz --target NAME --reproduce FILE)")
        return 1
    return 0


def reproduce(target: str, path: Path, build: Path) -> int:
    """Run one input (a crash file) through ``target`` in the sanitized process."""
    command = [sys.executable, "-m", "fuzz.run", target, str(path)]
    return subprocess.run(command, env=sanitized_env(build)).returncode


def merge(targets: list[str], build: Path, work: Path) -> int:
    """Add to each target's seeds the inputs of its working corpus that reach new coverage."""
    for target in targets:
        command = [
            sys.executable,
            "-m",
            "fuzz.run",
            target,
            "-merge=1",
            str(SEEDS / target),
            str(work / "corpus" / target),
        ]
        status = subprocess.run(command, env=sanitized_env(build), capture_output=True).returncode
        if status != 0:
            print(f"merging {target} failed (exit status {status})")
            return status
        print(f"{target}: {len(list((SEEDS / target).iterdir()))} seeds")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=600, help="total fuzzing time, shared by the targets")
    parser.add_argument("--target", action="append", choices=TARGETS, help="a target to run (default: all)")
    parser.add_argument("--build", type=Path, default=ROOT / "build" / "fuzz", help="the sanitized build")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "fuzz-work", help="corpus, logs, findings")
    parser.add_argument("--reproduce", type=Path, metavar="FILE", help="run FILE through one --target")
    parser.add_argument("--merge", action="store_true", help="add the working corpus' new coverage to the seeds")
    args = parser.parse_args()
    build = args.build.resolve()
    if args.reproduce is not None:
        if not args.target or len(args.target) != 1:
            parser.error("--reproduce needs exactly one --target")
        return reproduce(args.target[0], args.reproduce.resolve(), build)
    if args.merge:
        return merge(args.target or list(TARGETS), build, args.work.resolve())
    return run_all(args.target or list(TARGETS), args.seconds, build, args.work.resolve())


if __name__ == "__main__":
    sys.exit(main())
