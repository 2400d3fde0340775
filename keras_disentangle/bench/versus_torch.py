"""Deprecated: moved to `keras_disentangle.tools.bench.versus_torch` (`keras_disentangle.moved`)."""

from keras_disentangle import moved

moved.forward(__name__, "keras_disentangle.tools.bench.versus_torch")
