"""Readers and writers of the file formats napari-galam handles."""
