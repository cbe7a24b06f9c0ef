"""Generative programs (Pyro models) of pyro-lfads."""
