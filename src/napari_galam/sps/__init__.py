"""Stellar population synthesis: the shipped SSP library, filters and synthetic photometry."""
