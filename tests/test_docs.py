"""The API reference site (mkdocs.yml, docs/) builds from the docstrings with no warning."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_api_site_builds_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is in the dev extra: pip install -e '.[dev]'")
    pytest.importorskip("mkdocstrings_handlers.python", reason="mkdocstrings[python] is in the dev extra")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    api = (tmp_path / "api" / "index.html").read_text()
    for anchor in ("pyro_lfads.fit", "pyro_lfads.config.LFADSConfig", "models.lfads.LFADSModel",
                   "guides.lfads.LFADSGuide", "pyro_lfads.fitting.posterior.write_posterior",
                   "pyro_lfads.predictive", "pyro_lfads.fitting.predictive.PosteriorPredictive"):
        assert f'id="{anchor}"' in api, f"the API page has no entry {anchor}"
