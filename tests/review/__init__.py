"""review/: `edgeswin review` in a real browser."""
