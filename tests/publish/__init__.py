"""publish/: the MQTT sender, the outbox, TLS, snapshots, hard examples, stats and metrics."""
