"""Tests of the TF2 Detection Model Zoo models (boxtune.engines.tensorflow.zoo)."""
