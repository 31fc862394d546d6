"""fastmw benchmark suite (outside the default test run): ``make bench`` / ``make bench-e2e``."""
