"""Deprecated: moved to `keras_disentangle.data.visualize` (`keras_disentangle.moved`)."""

from keras_disentangle import moved

moved.forward(__name__, "keras_disentangle.data.visualize")
