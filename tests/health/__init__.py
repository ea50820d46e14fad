"""health/: camera health and drift on rendered and tampered video."""
