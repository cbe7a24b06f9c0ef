"""Observation models named by where they live, ``package.module:ClassName``, and what each must state.

A config's ``likelihood`` is a registered name (``poisson``, ...) or such a spec. ``pyro-lfads fit
--likelihood mypackage.noise:StudentTLikelihood`` records the spec in ``config.yaml``, and every later
process that reads the config imports the module again, so its module must be importable there: installed,
on ``PYTHONPATH``, or (for the ``pyro-lfads`` command) in the working directory.

This module imports nothing of the package but its error, so that the config can check a spec.
"""

from __future__ import annotations

import importlib
import re

from pyro_lfads.errors import InputError

#: The values an observation model's ``support`` and ``link`` may take (see ``likelihoods.py``).
SUPPORTS, LINKS = ("counts", "nonnegative", "positive", "real"), ("log", "identity", None)
SPEC_FORM = "package.module:ClassName"
_SPEC = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")


def is_spec(name) -> bool:
    """Whether ``name`` is meant as a spec (it holds a colon), not as a registered name."""
    return isinstance(name, str) and ":" in name


def interface_problem(likelihood_class: type) -> str | None:
    """What ``likelihood_class`` lacks of an observation model's interface, in words, or None."""
    name = likelihood_class.__name__
    for attribute in ("support", "link", "init_from_data", "forward"):
        if not hasattr(likelihood_class, attribute):
            return f"{name} needs a {attribute!r} (see likelihoods.py)"
    if likelihood_class.support not in SUPPORTS:
        return f"{name}.support: {likelihood_class.support!r} is not one of {', '.join(SUPPORTS)}"
    if likelihood_class.link not in LINKS:
        return f"{name}.link: {likelihood_class.link!r} is not one of log, identity, None"
    return None


def import_likelihood(spec: str) -> type:
    """The class that ``spec`` ("package.module:ClassName") names, imported; InputError in one line when the
    spec is malformed, its module cannot be imported, or the class is missing or lacks the interface."""
    if not _SPEC.fullmatch(spec):
        raise InputError(f"likelihood: {spec!r} is not of the form {SPEC_FORM}")
    module_name, class_name = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module: any failure of its import is one line
        why = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise InputError(f"likelihood: cannot import module {module_name!r} of {spec!r} ({why}); make it "
                         "importable: install it, add its folder to PYTHONPATH, or run from the folder that "
                         "holds it") from None
    likelihood_class = getattr(module, class_name, None)
    if not isinstance(likelihood_class, type):
        raise InputError(f"likelihood: module {module_name!r} ({getattr(module, '__file__', None)}) has no class "
                         f"{class_name!r}")
    problem = interface_problem(likelihood_class)
    if problem:
        raise InputError(f"likelihood: {spec}: {problem}")
    return likelihood_class
