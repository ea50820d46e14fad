"""engine/: the TensorRT backend and builder against the double; damaged rungs; plans pruned."""
