"""Errors that pyro-lfads raises for problems the user can fix."""


class InputError(ValueError):
    """Bad input from a file, an array, a config or a flag.

    The message is one line naming the source (file or argument), the key and
    the problem, e.g. ``data.h5: train_recon_data: holds NaN``. The command line
    prints it without a traceback and exits with status 2.
    """


class TrainingDiverged(InputError):
    """Training met a non-finite loss or gradient too many steps in a row and stopped (one-line message)."""
