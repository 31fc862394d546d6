"""Optional integrations, each imported only on demand (``import fastmw`` imports none of them)."""
