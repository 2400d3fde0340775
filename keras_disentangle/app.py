"""Deprecated: moved to `keras_disentangle.apps.app` (`keras_disentangle.moved`)."""

from keras_disentangle import moved

moved.forward(__name__, "keras_disentangle.apps.app")
