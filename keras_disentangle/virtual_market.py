"""Deprecated: moved to `keras_disentangle.apps.virtual_market` (`keras_disentangle.moved`)."""

from keras_disentangle import moved

moved.forward(__name__, "keras_disentangle.apps.virtual_market")
