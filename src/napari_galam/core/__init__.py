"""Pure image and spectrum processing (no napari, no Qt, no TensorFlow)."""
