"""The TF2 Detection Model Zoo SSD-family models, part by part, in Keras 3."""
