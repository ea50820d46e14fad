"""classify/ and prepare/: preprocess, engine and postprocess alone; the finisher; regions."""
