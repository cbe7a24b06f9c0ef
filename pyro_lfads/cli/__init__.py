"""The ``pyro-lfads`` command: parses flags, calls the library, words errors as flags."""

from pyro_lfads.cli.commands import main

__all__ = ["main"]
