"""Shared test fixtures: where ../shared is, and a CPU-only JAX."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("JAXTRACK_SHARED", REPO_ROOT.parent / "shared"))
OTB_ROOT = SHARED / "data" / "otb"
MOBILENET_PT = SHARED / "weights" / "mobilenet_v2_imagenet_features.pt"


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
