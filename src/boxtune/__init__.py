"""boxtune: fine-tune object detectors on your own images and serve them."""

__version__ = "0.1.0"
