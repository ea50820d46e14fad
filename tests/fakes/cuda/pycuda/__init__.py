"""Test double of pycuda (see driver.py). Only tests put tests/fakes/cuda on the import path."""
