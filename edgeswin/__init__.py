"""edgeswin: a camera classification daemon for NVIDIA Jetson (OpenCV -> Swin engine -> MQTT)."""

__version__ = "0.1.0"
