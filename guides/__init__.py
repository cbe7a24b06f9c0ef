"""Inference programs (Pyro guides) of pyro-lfads."""
