"""A person re-identification network and its trainer, for the paper's Virtual Market experiment (Sec. 5.4).

  model.py     the network: a ResNet-style trunk, a feature layer, a softmax classifier;
  train.py     `python -m keras_disentangle.reid.train`: softmax (+ triplet) on a Market-layout split;
  evaluate.py  `python -m keras_disentangle.reid.evaluate`: Market's protocol (`metrics.reid`) on its
               features, optionally with KISSME (`metrics.kissme`).
"""
