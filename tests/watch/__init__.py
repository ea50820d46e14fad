"""watch/: `edgeswin watch` and its board in a real browser."""
