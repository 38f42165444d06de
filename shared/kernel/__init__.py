"""Cross-cutting pure helpers that several capabilities share (localization; money next): no I/O,
no SDK, no settings."""
