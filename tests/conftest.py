"""Shared fixtures: the repo's label schema and the read-only recorded Label Studio bodies."""
from pathlib import Path

import pytest

from training.schema import load_label_config

LS_RECORDED = Path("/work/shared/label-studio-1.23.2")
BENCHMARKS = Path("/work/shared/benchmarks")


@pytest.fixture(scope="session")
def schema():
    """The repo's eleven-label schema (label_config.xml)."""
    return load_label_config()


@pytest.fixture(scope="session")
def recorded_dir():
    """Folder of real request/response bodies recorded against Label Studio 1.23.2 (read-only)."""
    if not LS_RECORDED.is_dir():
        pytest.skip(f"{LS_RECORDED} not available")
    return LS_RECORDED


@pytest.fixture(scope="session")
def benchmarks_dir():
    """Folder of the real-data benchmark exports (read-only)."""
    if not BENCHMARKS.is_dir():
        pytest.skip(f"{BENCHMARKS} not available")
    return BENCHMARKS
