"""Keras models, training, the shipped-weights registry and inference (TensorFlow lazily)."""
