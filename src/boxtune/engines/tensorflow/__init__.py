"""The TensorFlow engine (Keras 3 on TensorFlow 2): SSD-family detectors in the TF Object
Detection API's layout, trained with a fixed-signature ``tf.function`` step and exported as a
SavedModel with that API's ``serving_default`` signature.

Nothing here is imported by ``import boxtune``: TensorFlow loads only when a TensorFlow model is
used (``boxtune.engines.get_engine("tensorflow")``).
"""

import os

# Before TensorFlow is first imported (any module of this package imports this file first):
# Keras 3 on TensorFlow, and without TensorFlow's C++ start-up chatter on stderr.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
