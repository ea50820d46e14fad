"""process/: systemd notify, the C heap, reloads, a first boot and a stop."""
