"""The synthetic galaxy universe: galaxy models rendered as cutouts, spectra and cubes."""
