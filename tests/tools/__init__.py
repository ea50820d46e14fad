"""tools/: `edgeswin bench`."""
