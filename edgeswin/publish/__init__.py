"""Stage 5 and everything the daemon says: MQTT (`mqtt`, the only module that imports paho,
with its durable `outbox` and the broker's learned `packet_limit`), Home Assistant discovery,
snapshots, hard examples, the `<root>/stats` report, running figures and Prometheus metrics.

Takes `Message`s and records from the daemon; hands on bytes to the broker, files to the state dir
and text to HTTP scrapers.
"""
