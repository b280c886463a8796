"""Staging left by a killed process is cleaned by the next run; a live process's staging never is.

Real processes, really killed (SIGKILL at a point where their staging exists): fetch's ``DATA_DIR/.partial/NAME-*``
and a build's ``processed/.NAME.building-*`` / ``.NAME.old-*``. And processed folders follow the umask like the
files in them, instead of mkdtemp's owner-only 0700.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

from convrec.catalog.items import Catalog, Item
from convrec.data.dataset import Conversion, load_processed, save_processed
from convrec.data.fetch import (
    PARTIAL_DIR,
    UNOWNED_STAGING_MAX_AGE_S,
    fetch_dataset,
    remove_stale_staging,
    verify_dataset,
)
from convrec.data.load import available_datasets
from convrec.data.model import Dialogue, Turn
from convrec.io import _UMASK

# Builds the toy dataset of `toy_conversion` into argv[1], pausing inside the build (its staging folder partly
# written) after creating the file argv[2] ("ready"), until the file argv[3] ("go") exists.
BUILD_SCRIPT = f"""
import sys, time
from pathlib import Path
from convrec.data import dataset
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_staging_cleanup import toy_conversion

ready, go = Path(sys.argv[2]), Path(sys.argv[3])
write = dataset.write_samples_parquet

def paused(path, dialogues):
    ready.touch()
    while not go.exists():
        time.sleep(0.05)
    return write(path, dialogues)

dataset.write_samples_parquet = paused
dataset.save_processed(Path(sys.argv[1]), toy_conversion(), {{"name": "toy", "fingerprint": "f"}})
"""

# Fetches dataset argv[2] from the mirror argv[3] into argv[1], stopping for good in the middle of copying the
# first file into its staging folder (after creating the file argv[4]).
FETCH_SCRIPT = """
import sys, time
from pathlib import Path
from convrec.data import fetch

def stuck(src, dest, total, label, progress):
    dest.write_bytes(src.read(1000))
    Path(sys.argv[4]).touch()
    time.sleep(600)

fetch._copy = stuck
fetch.fetch_dataset(sys.argv[2], Path(sys.argv[1]), mirror=Path(sys.argv[3]), progress=False)
"""


def toy_conversion() -> Conversion:
    items = [Item(f"i{k}", f"Title {k}") for k in range(4)]
    dialogues = [Dialogue(f"d{k}", "test" if k == 0 else "train",
                          [Turn("seeker", "hi", ("i0",)), Turn("recommender", "try", (f"i{k % 3 + 1}",))])
                 for k in range(4)]
    return Conversion(Catalog(items, name="toy"), dialogues, {})


def start(script: str, *argv: str | Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *map(str, argv)], stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"the process ended before {path.name}: {process.stderr.read()}")
        assert time.monotonic() < deadline, f"no {path.name} after {timeout_s} s"
        time.sleep(0.05)


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()  # reaped: its pid is free again


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_killed_build_leaves_staging_that_the_next_build_removes(tmp_path):
    root = tmp_path / "processed"
    save_processed(root / "toy", toy_conversion(), {"name": "toy", "fingerprint": "f"})
    process = start(BUILD_SCRIPT, root / "toy", tmp_path / "ready", tmp_path / "never")
    wait_for(tmp_path / "ready", process)
    kill(process)
    [leftover] = [name for name in names(root) if name != "toy"]
    assert leftover.startswith(f".toy.building-{socket.gethostname()}-{process.pid}-")
    assert (root / leftover / "dialogues.jsonl").exists()  # what SIGKILL used to leave forever
    save_processed(root / "toy", toy_conversion(), {"name": "toy", "fingerprint": "f"})
    assert names(root) == ["toy"]


def test_loading_removes_a_dead_process_s_leftovers(tmp_path):
    """Killed during the swap, after which the next runs only load the cache: loading cleans up too."""
    root = tmp_path / "processed"
    save_processed(root / "toy", toy_conversion(), {"name": "toy", "fingerprint": "f"})
    made = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                           "from convrec.data.fetch import make_staging_dir; "
                           "print(make_staging_dir(Path(sys.argv[1]), '.toy.old-'))", str(root)],
                          capture_output=True, text=True, check=True)  # exits: its staging is a dead one's
    leftover = Path(made.stdout.strip())
    (leftover / "previous").mkdir()
    assert leftover.exists()
    assert len(load_processed(root / "toy", "toy").dialogues) == 4
    assert names(root) == ["toy"]


def test_a_live_build_s_staging_is_left_alone(tmp_path):
    """Two builds at once: the second must not take the first's staging for a leftover."""
    root = tmp_path / "processed"
    first = start(BUILD_SCRIPT, root / "toy", tmp_path / "ready", tmp_path / "go")
    try:
        wait_for(tmp_path / "ready", first)
        save_processed(root / "toy", toy_conversion(), {"name": "toy", "fingerprint": "f"})
        assert any(name.startswith(f".toy.building-{socket.gethostname()}-{first.pid}-") for name in names(root))
        (tmp_path / "go").touch()
        assert first.wait(timeout=60) == 0, first.stderr.read()  # it finished its build: nothing was taken
    finally:
        if first.poll() is None:
            kill(first)
    assert names(root) == ["toy"]
    assert len(load_processed(root / "toy", "toy").dialogues) == 4


def test_a_killed_fetch_leaves_staging_that_the_next_fetch_removes(tmp_path, mirror):
    data_dir = tmp_path / "data"
    process = start(FETCH_SCRIPT, data_dir, "catalog", mirror, tmp_path / "copying")
    wait_for(tmp_path / "copying", process)
    kill(process)
    [leftover] = names(data_dir / PARTIAL_DIR)
    assert leftover.startswith(f"catalog-{socket.gethostname()}-{process.pid}-")
    fetch_dataset("catalog", data_dir, mirror=mirror, progress=False)
    assert not (data_dir / PARTIAL_DIR).exists()
    assert verify_dataset("catalog", data_dir) == []


def test_which_staging_is_stale(tmp_path):
    """Dead process of this host: stale. Live process, or another host (its pids mean nothing here): kept.
    Without an owner in the name (an older convrec): stale only once untouched for a day."""
    host = socket.gethostname()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    folders = {
        "dead": f"redial-{host}-{dead}-abc_1",
        "live": f"redial-{host}-{os.getpid()}-abc_2",
        "other host": f"redial-elsewhere.example-{dead}-abc_3",
        "old unowned": "redial-k2j4h5",
        "new unowned": "redial-p9q8r7",
        "another prefix": f"notes-{host}-{dead}-abc_4",
        "longer prefix": f"opendialkg-books-{host}-{dead}-abc_5",
    }
    for name in folders.values():
        (tmp_path / name).mkdir()
    long_ago = time.time() - UNOWNED_STAGING_MAX_AGE_S - 60
    os.utime(tmp_path / folders["old unowned"], (long_ago, long_ago))
    removed = remove_stale_staging(tmp_path, ["redial-", "opendialkg-", "opendialkg-books-"])
    assert removed == 3
    assert names(tmp_path) == sorted(folders[k] for k in ("live", "other host", "new unowned", "another prefix"))


def test_processed_folders_follow_the_umask(tmp_path):
    save_processed(tmp_path / "processed" / "toy", toy_conversion(), {"name": "toy", "fingerprint": "f"})
    folder_mode = stat.S_IMODE((tmp_path / "processed" / "toy").stat().st_mode)
    file_mode = stat.S_IMODE((tmp_path / "processed" / "toy" / "dialogues.jsonl").stat().st_mode)
    assert folder_mode == 0o777 & ~_UMASK
    assert file_mode == 0o666 & ~_UMASK
    if _UMASK == 0o022:
        assert folder_mode == 0o755  # not mkdtemp's 0700: others who may read the files may list the folder



def test_a_build_s_staging_is_never_listed_as_a_dataset(tmp_path):
    staging = tmp_path / "processed" / ".mybooks.building-host-123"
    staging.mkdir(parents=True)
    (staging / "build.json").write_text("{}")
    assert not any(name.startswith(".") for name in available_datasets(tmp_path))
