"""napari-galam: stellar age and metallicity of galaxies in napari."""

__version__ = "0.1.0"
