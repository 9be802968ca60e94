"""napari dock widgets. The only package that imports napari, qtpy or magicgui."""
