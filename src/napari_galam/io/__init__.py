"""Readers and writers of the file formats napari-galam handles.

``fits`` reads FITS HDUs lazily and ``headers`` interprets their units, wavelength axes
and sky coordinates; ``cubes`` (IFU survey layouts) and ``narrowband`` (narrow-band
stacks) build on them, and ``sources.open_source`` picks between the two. ``images``
reads cutouts, ``spectra`` SDSS spectra, ``writers`` maps and tables.
"""
