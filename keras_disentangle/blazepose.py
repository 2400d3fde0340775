"""Deprecated: moved to `keras_disentangle.pose.blazepose` (`keras_disentangle.moved`)."""

from keras_disentangle import moved

moved.forward(__name__, "keras_disentangle.pose.blazepose")
