"""Stage 1, capture: one thread per camera reads frames with OpenCV (files, MJPEG, RTSP
through FFmpeg or a GStreamer decode-and-scale pipeline, V4L2) and keeps only the newest.

Hands on `records.Frame`s (the newest frame of each camera, with its capture time and index) to
`classify.schedule`; says nothing over MQTT itself.
"""
