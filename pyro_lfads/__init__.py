"""LFADS as a Pyro probabilistic program."""

__version__ = "0.1.0"
