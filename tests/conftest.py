"""Shared by every test: the TensorFlow engine's import-order guard comes first.

Test modules import ``tensorflow`` directly; ``boxtune.engines.tensorflow`` (its package file
only: environment defaults and triton, no TensorFlow) must be imported before, or torchvision
imported later in the same pytest process segfaults (see that file).
"""

import boxtune.engines.tensorflow  # noqa: F401
