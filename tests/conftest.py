"""Shared fixtures: the real data mirror and the datasets converted from it, once per test session.

The mirror is ``../shared/data`` beside the project (``/work/shared/data`` for ``/work/main``), or the
directory named by ``CONVREC_DATA_MIRROR``. Tests that need it are skipped, with the reason, when neither
exists.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from convrec.data.dataset import CRSDataset
from convrec.data.load import load_dataset

MIRROR_ENV = "CONVREC_DATA_MIRROR"


def find_mirror() -> Path | None:
    # tests/conftest.py -> parents[1] is the project root, parents[2] the folder that holds shared/.
    candidate = Path(__file__).resolve().parents[2] / "shared" / "data"
    if (candidate / "MANIFEST.tsv").is_file():
        return candidate
    env = os.environ.get(MIRROR_ENV)
    if env and (Path(env) / "MANIFEST.tsv").is_file():
        return Path(env)
    return None


@pytest.fixture(scope="session")
def mirror() -> Path:
    found = find_mirror()
    if found is None:
        pytest.skip(f"data mirror not found (../shared/data beside the project, or ${MIRROR_ENV})")
    return found


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data dir for the session: datasets are fetched from the mirror and converted into it once."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def redial(mirror: Path, data_dir: Path) -> CRSDataset:
    return load_dataset("redial", data_dir, mirror)


@pytest.fixture(scope="session")
def inspired(mirror: Path, data_dir: Path) -> CRSDataset:
    return load_dataset("inspired", data_dir, mirror)
