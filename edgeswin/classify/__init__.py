"""Stage 4 and the order of work: which (camera, region) goes next (`schedule`), one
classification from frame to payloads (`step`), softmax/smoothing/publish policy (`postprocess`),
and the tail of each classification on a thread of its own (`finisher`).

Hands on `publish.mqtt.Message`s and the per-camera state the reports read; imports no MQTT client.
"""
