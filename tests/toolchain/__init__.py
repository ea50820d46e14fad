"""toolchain/: export, finetune, eval, quantize, the learning loop."""
