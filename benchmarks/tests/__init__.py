"""The benchmark harness's own checks (run by ``make test``; nothing under tests/ imports benchmarks/)."""
