"""Subcommands of the ``galam`` command line, one module each."""
