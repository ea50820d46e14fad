"""canary/: the canary through the real daemon."""
