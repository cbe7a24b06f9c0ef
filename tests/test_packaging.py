"""The built wheel ships models/ and guides/ inside the package, and nothing at top level."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

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
