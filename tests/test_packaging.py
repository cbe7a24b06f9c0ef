"""The built wheel ships models/ and guides/ inside the package, and nothing at top level; the installed
dependencies are versions the code was written for."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                             "-w", str(out), str(ROOT)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{result.stdout}\n{result.stderr}")
    (path,) = out.glob("pyro_lfads-*.whl")
    return path


@pytest.mark.slow
def test_wheel_holds_models_and_guides_inside_the_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("pyro_lfads/models/lfads.py", "pyro_lfads/models/likelihoods.py",
                   "pyro_lfads/guides/lfads.py", "pyro_lfads/synthetic/lorenz.py", "pyro_lfads/cli/commands.py"):
        assert module in names, module
    top_level = {name.split("/")[0] for name in names}
    assert "models" not in top_level and "guides" not in top_level
    assert not any(name.startswith(("tests/", "benchmarks/", "examples/")) for name in names)


@pytest.mark.slow
def test_wheel_declares_the_console_script(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    (entry_points,) = [n for n in names if n.endswith("entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "pyro-lfads = pyro_lfads.cli:main" in text


def requirement(name: str) -> Requirement:
    """The installed pyro-lfads's requirement on ``name`` (its package metadata, from pyproject.toml)."""
    (found,) = [req for req in map(Requirement, importlib.metadata.requires("pyro-lfads"))
                if req.name == name and req.marker is None]
    return found


def arviz_written_for(version: str) -> bool:
    """Whether arviz ``version`` is within the bound the diagnostics were written for."""
    return requirement("arviz").specifier.contains(version, prereleases=True)


def test_arviz_is_bounded_to_the_api_the_diagnostics_use():
    # arviz 1.x (Python >= 3.12) changed from_dict (one dict of groups, a DataTree back) and groups()
    assert arviz_written_for("0.17.0") and arviz_written_for("0.23.4")
    assert not arviz_written_for("1.0.0") and not arviz_written_for("1.3.0")


def test_the_installed_arviz_is_a_version_the_code_was_written_for():
    import arviz

    bound = requirement("arviz").specifier
    assert arviz_written_for(arviz.__version__), (
        f"arviz {arviz.__version__} is installed, but the diagnostics use the API of arviz{bound}: "
        f"pip install 'arviz{bound}'")
