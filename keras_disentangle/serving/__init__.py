"""Trained runs loaded for inference, and their export.

`runtime` loads stage-I and stage-II runs and serves them (everything that uses a trained model
stands on it, and it never imports `training/`); `export` writes SavedModels (TF Serving layout) and
LiteRT files; `photo_graph` is the bytes-in/PNG-out signature; `litert` the LiteRT conversion and
its benchmark.
"""
