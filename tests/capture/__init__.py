"""capture/: cameras decoded by OpenCV and GStreamer; frames reused."""
