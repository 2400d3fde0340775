"""keras-disentangle: Disentangled Person Image Generation (Ma et al., CVPR 2018) in TF/Keras.

Modules, in the order data flows through them (a module imports only modules above it):
configs, records, geometry, synthetic, data -> models -> losses -> training | runtime (+ rundir)
-> apps, generate, demo, metrics, export. Nothing after the runtime imports training.
"""

__version__ = "0.1.0"
