"""The project's own shape: layout, docs that cannot go stale, one place per vocabulary."""
