"""fleet/: signed bundles pushed to real daemons on one broker."""
