"""The TensorFlow engine (Keras 3 on TensorFlow 2): SSD-family detectors in the TF Object
Detection API's layout, trained with a fixed-signature ``tf.function`` step and exported as a
SavedModel with that API's ``serving_default`` signature.

Nothing here is imported by ``import boxtune``: TensorFlow loads only when a TensorFlow model is
used (``boxtune.engines.get_engine("tensorflow")``).
"""

import importlib.util
import os

# Before TensorFlow is first imported (any module of this package imports this file first):
# Keras 3 on TensorFlow, and without TensorFlow's C++ start-up chatter on stderr.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# torch's CUDA wheels bring triton, which torchvision imports (through torch._dynamo): loading
# triton's LLVM after TensorFlow's segfaults the process, loading it first is safe (0.2 s). So a
# process that uses both engines (a test run, a notebook) survives either order.
if importlib.util.find_spec("triton") is not None:
    import triton  # noqa: F401
