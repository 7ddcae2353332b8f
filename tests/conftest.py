"""Shared test fixtures: where ../shared is, and a CPU-only JAX."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# training scripts validate on ~/.cache/jaxtrack/validation when it is built; tests do not
os.environ["JAXTRACK_VALIDATION_ROOT"] = os.path.join(os.path.dirname(__file__), "no-validation-set")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("JAXTRACK_SHARED", REPO_ROOT.parent / "shared"))
OTB_ROOT = SHARED / "data" / "otb"
MOBILENET_PT = SHARED / "weights" / "mobilenet_v2_imagenet_features.pt"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """A test module's ``SLOW_CASES`` (test names with their parameters) are ``slow``: the cases
    of a parametrised test that would put the default suite over its 15 minutes."""
    for item in items:
        if item.name in getattr(getattr(item, "module", None), "SLOW_CASES", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def otb_root():
    if not OTB_ROOT.is_dir():
        pytest.skip("../shared/data/otb not present")
    return OTB_ROOT


@pytest.fixture
def mobilenet_pt():
    if not MOBILENET_PT.is_file():
        pytest.skip("../shared/weights not present")
    return MOBILENET_PT


def _run_script(name: str, *args, env=None, timeout: float = 900, check: bool = True):
    """Run ``experiments/<name>.py`` in a fresh process (scripts are run, never imported)."""
    import subprocess
    import sys
    cmd = [sys.executable, str(REPO_ROOT / "experiments" / f"{name}.py"), *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})})
    if check:
        assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture
def run_script():
    """``run_script("run_ope", "--tracker", ...)``: a script's CompletedProcess."""
    return _run_script
