"""Offline jobs: any video collection -> sharded TFRecords of compressed-domain tensors."""

from imr_jax import cli

# Every job here reads or writes TFRecords; TensorFlow is loaded once, without its C++ start-up lines.
cli.import_tensorflow()
