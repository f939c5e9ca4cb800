"""The pure core: decisions, parsing and framing with no I/O (see docs/architecture)."""
