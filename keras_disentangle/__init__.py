"""keras-disentangle: Disentangled Person Image Generation (Ma et al., CVPR 2018) in TF/Keras.

One package per floor, in the order data flows through them (a module imports only its own floor and
the floors below; `make graph` checks it): configs, cli, precision, progress -> data/ (+ rundir,
synthetic/) -> models/ -> losses -> pose/ -> serving/ (runtime, export) -> apps/ -> metrics/ ->
training/ (+ reid/) -> tools/. Nothing below training/ imports it. The old flat module paths
(`keras_disentangle.runtime`, ...) are deprecated shims (`moved`).
"""

__version__ = "0.1.0"
