"""Fetching datasets from a mirror dir, over HTTP and from zip archives, all-or-nothing and verified.

Real files and a real loopback HTTP server: the point is that what lands in the data dir is exactly what the
registry promises, and that a failure leaves nothing half-done behind.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from convrec.data.fetch import (
    dataset_files,
    default_data_dir,
    default_mirror,
    fetch_dataset,
    fetch_spec,
    resolve,
    verify_dataset,
)
from convrec.data.registry import DATASETS, DatasetSpec, RemoteFile
from convrec.io import DataError, sha256_file


def _find_mirror() -> Path | None:
    candidate = Path(__file__).resolve().parents[3] / "shared" / "data"
    if (candidate / "MANIFEST.tsv").is_file():
        return candidate
    env = os.environ.get("CONVREC_DATA_MIRROR")
    if env and (Path(env) / "MANIFEST.tsv").is_file():
        return Path(env)
    return None


MIRROR = _find_mirror()
needs_mirror = pytest.mark.skipif(
    MIRROR is None, reason="data mirror not found (../shared/data beside the project, or CONVREC_DATA_MIRROR)"
)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[Callable[[Path], str]]:
    """Serve directories on 127.0.0.1 (port 0); every server is shut down after the test."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(directory: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _remote(path: str, data: bytes, **kwargs: object) -> RemoteFile:
    return RemoteFile(path, hashlib.sha256(data).hexdigest(), len(data), **kwargs)  # type: ignore[arg-type]


def _spec(*files: RemoteFile) -> DatasetSpec:
    return DatasetSpec("tiny", "test data", "", "none", tuple(files))


def _write(root: Path, rel: str, data: bytes) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(data)


def _landed(data_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*")) if data_dir.exists() else []


@needs_mirror
def test_registry_matches_mirror_manifest() -> None:
    manifest = {}
    for row in (MIRROR / "MANIFEST.tsv").read_text().splitlines()[1:]:
        size, sha, path = row.split("\t")
        manifest[path] = (sha, int(size))
    registered = {f.path: (f.sha256, f.size) for spec in DATASETS.values() for f in spec.files}
    assert len(registered) == sum(len(spec.files) for spec in DATASETS.values()), "a file is in two datasets"
    for path, expected in manifest.items():
        assert registered.get(path) == expected, path
    # Files the mirror added after MANIFEST.tsv was written (their sha256 and size come from the mirror's copy).
    assert set(registered) - set(manifest) == {"inspired/official/README.md", "catalog/goodbooks10k_books.csv"}


@needs_mirror
def test_fetch_inspired_from_mirror_then_noop(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    paths = fetch_dataset("inspired", data_dir, mirror=MIRROR, progress=False)
    wanted = DATASETS["catalog"].files + DATASETS["inspired"].files  # requirements first
    assert paths == [data_dir / f.path for f in wanted]
    for f in wanted:
        assert sha256_file(data_dir / f.path) == f.sha256
    assert not (data_dir / ".partial").exists()
    assert verify_dataset("inspired", data_dir) == [] and verify_dataset("catalog", data_dir) == []
    files = dataset_files("inspired", data_dir)
    assert files["inspired/official/dev.tsv"] == (data_dir / "inspired/official/dev.tsv").resolve()

    before = {p: p.stat().st_mtime_ns for p in paths}
    assert fetch_dataset("inspired", data_dir, mirror=MIRROR, progress=False) == paths
    assert {p: p.stat().st_mtime_ns for p in paths} == before


@needs_mirror
def test_fetch_over_http_base_url(tmp_path: Path, serve: Callable[[Path], str]) -> None:
    base_url = serve(MIRROR) + "/"
    data_dir = tmp_path / "data"
    (path,) = fetch_dataset("opendialkg-books", data_dir, base_url=base_url, progress=False)
    assert path == data_dir / "opendialkg_books/dialogs.jsonl"
    assert sha256_file(path) == DATASETS["opendialkg-books"].files[0].sha256
    assert _landed(data_dir) == ["opendialkg_books", "opendialkg_books/dialogs.jsonl"]


def test_archive_member_extracted_once(tmp_path: Path, serve: Callable[[Path], str]) -> None:
    site = tmp_path / "site"
    site.mkdir()
    a, b = b"user,item\n1,2\n", b"hello\n" * 100
    with zipfile.ZipFile(site / "bundle.zip", "w") as zf:
        zf.writestr("bundle/a.csv", a)
        zf.writestr("bundle/b.txt", b)
    url = serve(site) + "/bundle.zip"
    spec = _spec(
        _remote("tiny/a.csv", a, url=url, archive_member="bundle/a.csv"),
        _remote("tiny/sub/b.txt", b, url=url, archive_member="bundle/b.txt"),
    )
    data_dir = tmp_path / "data"
    paths = fetch_spec(spec, data_dir, progress=False)
    assert [p.read_bytes() for p in paths] == [a, b]
    assert _landed(data_dir) == ["tiny", "tiny/a.csv", "tiny/sub", "tiny/sub/b.txt"]

    missing = _spec(_remote("tiny/c.csv", a, url=url, archive_member="bundle/nope.csv"))
    with pytest.raises(DataError, match="no member 'bundle/nope.csv'"):
        fetch_spec(missing, data_dir, progress=False)


def test_direct_url_and_http_error(tmp_path: Path, serve: Callable[[Path], str]) -> None:
    site = tmp_path / "site"
    _write(site, "x.json", b"{}\n")
    base = serve(site)
    data_dir = tmp_path / "data"
    (path,) = fetch_spec(
        _spec(_remote("tiny/x.json", b"{}\n", url=f"{base}/x.json")), data_dir, progress=False
    )
    assert path.read_bytes() == b"{}\n"
    with pytest.raises(DataError, match="HTTP 404") as err:
        fetch_spec(_spec(_remote("tiny/y.json", b"", url=f"{base}/y.json")), data_dir, progress=False)
    assert err.value.path == f"{base}/y.json"


def test_checksum_mismatch_leaves_nothing(tmp_path: Path) -> None:
    mirror, data_dir = tmp_path / "mirror", tmp_path / "data"
    _write(mirror, "tiny/a.txt", b"aaa")
    _write(mirror, "tiny/b.txt", b"tampered")
    bad = RemoteFile("tiny/a.txt", "0" * 64, 3, None, note="test")
    with pytest.raises(DataError, match="checksum mismatch: expected 0{64}, got ") as err:
        fetch_spec(_spec(bad), data_dir, mirror=mirror, progress=False)
    assert err.value.path == str(mirror / "tiny/a.txt")
    assert _landed(data_dir) == []

    # The first file is fine, the second is not: the first must not land either.
    spec = _spec(_remote("tiny/a.txt", b"aaa", url=None), _remote("tiny/b.txt", b"original", url=None))
    with pytest.raises(DataError, match="checksum mismatch") as err:
        fetch_spec(spec, data_dir, mirror=mirror, progress=False)
    assert err.value.path == str(mirror / "tiny/b.txt")
    assert "expected 8 bytes" not in str(err.value) and _landed(data_dir) == []


def test_checksum_mismatch_over_http(tmp_path: Path, serve: Callable[[Path], str]) -> None:
    mirror, data_dir = tmp_path / "mirror", tmp_path / "data"
    _write(mirror, "tiny/a.txt", b"aaa")
    base = serve(mirror)
    with pytest.raises(DataError, match=r"checksum mismatch.*\(expected 4 bytes, got 3\)") as err:
        fetch_spec(_spec(_remote("tiny/a.txt", b"aaaa", url=None)), data_dir, base_url=base, progress=False)
    assert err.value.path == f"{base}/tiny/a.txt"
    assert _landed(data_dir) == []


def test_bad_local_file_is_refetched_and_force_replaces(tmp_path: Path) -> None:
    mirror, data_dir = tmp_path / "mirror", tmp_path / "data"
    _write(mirror, "tiny/a.txt", b"good")
    spec = _spec(_remote("tiny/a.txt", b"good", url=None))
    _write(data_dir, "tiny/a.txt", b"evil")  # same size, wrong content
    (path,) = fetch_spec(spec, data_dir, mirror=mirror, progress=False)
    assert path.read_bytes() == b"good"
    inode = path.stat().st_ino
    fetch_spec(spec, data_dir, mirror=mirror, progress=False)
    assert path.stat().st_ino == inode
    fetch_spec(spec, data_dir, mirror=mirror, force=True, progress=False)
    assert path.stat().st_ino != inode and path.read_bytes() == b"good"


def test_missing_in_mirror_names_file_and_dataset(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with pytest.raises(DataError, match="not in the mirror.*'opendialkg-books'") as err:
        fetch_dataset("opendialkg-books", tmp_path / "data", mirror=mirror, progress=False)
    assert err.value.path == str(mirror / "opendialkg_books/dialogs.jsonl")
    assert _landed(tmp_path / "data") == []


def test_unknown_dataset_lists_names(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown dataset 'redail'.*catalog, goodbooks-10k, inspired, movielens") as err:
        fetch_dataset("redail", tmp_path, progress=False)
    for name in DATASETS:
        assert name in str(err.value)


def test_mirror_only_without_mirror_says_how(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="mirror-only.*CONVREC_DATA_MIRROR") as err:
        fetch_dataset("opendialkg-books", tmp_path / "data", progress=False)
    assert err.value.path == "opendialkg_books/dialogs.jsonl"
    assert _landed(tmp_path / "data") == []


def test_verify_and_dataset_files_report_missing(tmp_path: Path) -> None:
    problems = verify_dataset("movielens", tmp_path)
    assert len(problems) == len(DATASETS["movielens"].files)
    assert all("missing" in p and "convrec data fetch movielens" in p for p in problems)
    with pytest.raises(DataError, match="convrec data fetch redial"):
        dataset_files("redial", tmp_path)


def test_resolve_and_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert [s.name for s in resolve("redial")] == ["catalog", "redial"]
    assert [s.name for s in resolve("movielens")] == ["movielens"]
    monkeypatch.delenv("CONVREC_DATA_MIRROR", raising=False)
    monkeypatch.delenv("CONVREC_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)  # no ../shared/data here
    assert default_mirror() is None and default_data_dir() == Path("data")
    conventional = tmp_path / "shared" / "data"
    conventional.mkdir(parents=True)
    (conventional / "MANIFEST.tsv").write_text("bytes\tsha256\tpath\n")
    (tmp_path / "checkout").mkdir()
    monkeypatch.chdir(tmp_path / "checkout")
    assert default_mirror() == conventional.resolve()
    monkeypatch.setenv("CONVREC_DATA_MIRROR", str(tmp_path))
    monkeypatch.setenv("CONVREC_DATA_DIR", str(tmp_path / "d"))
    assert default_mirror() == tmp_path and default_data_dir() == tmp_path / "d"


def test_remote_file_rejects_escaping_paths() -> None:
    with pytest.raises(ValueError, match="inside the data dir"):
        RemoteFile("../etc/passwd", "0" * 64, 1, None)
    with pytest.raises(ValueError, match="sha256"):
        RemoteFile("a/b", "xyz", 1, None)
