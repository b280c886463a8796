"""Every result records where it came from: the git commit (with a dirty flag; nothing outside a checkout),
convrec's and its main dependencies' versions, and the sha256 of each checkpoint it loaded."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy
import pydantic
import pytest
import torch

from convrec.evaluate import provenance as provenance_module
from convrec.evaluate.provenance import MAIN_DEPENDENCIES, checkpoint_hashes, git_state, versions
from convrec.retrieval import build_recommender

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
NETWORK = {"hidden": 16, "n_blocks": 1, "dropout": 0.0, "text_init": False}


def git(where: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(where), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          capture_output=True, text=True, check=True).stdout.strip()


@needs_git
def test_git_state_names_the_commit_and_whether_tracked_files_changed(tmp_path):
    package = tmp_path / "src" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("x = 1\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "first")
    head = git(tmp_path, "rev-parse", "HEAD")
    assert git_state(package) == {"commit": head, "dirty": False}
    (tmp_path / "results.json").write_text("{}")  # untracked output: still clean
    assert git_state(package) == {"commit": head, "dirty": False}
    (package / "__init__.py").write_text("x = 2\n")
    assert git_state(package) == {"commit": head, "dirty": True}


@needs_git
def test_no_git_state_outside_a_checkout_or_for_an_untracked_copy(tmp_path, monkeypatch):
    loose = tmp_path / "site-packages" / "pkg"
    loose.mkdir(parents=True)
    (loose / "__init__.py").write_text("")
    assert git_state(loose) is None  # not in any repository
    git(tmp_path, "init", "-q")  # now inside one, but the package is not its tracked code
    assert git_state(loose) is None
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))
    assert git_state(Path(provenance_module.__file__).parent) is None  # no git at all: absent, no crash


def test_versions_of_convrec_and_its_main_dependencies():
    found = versions()
    assert list(found) == ["convrec", *MAIN_DEPENDENCIES]
    assert found["numpy"] == numpy.__version__ and found["pydantic"] == pydantic.VERSION
    assert found["torch"].split("+")[0] == torch.__version__.split("+")[0]


def test_checkpoint_hashes_follow_every_checkpoint_of_a_description(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.safetensors").write_bytes(b"weights")
    monkeypatch.chdir(tmp_path)
    description = {"name": "rar", "config": {"checkpoint": "run"},
                   "retriever": {"config": {"checkpoint": str(run) + "/"}, "training": {"checkpoint": str(run)}},
                   "llm": {"checkpoint": None}, "others": [{"checkpoint": str(tmp_path / "no-weights")}]}
    assert checkpoint_hashes(description) == [{"path": "run", "sha256": hashlib.sha256(b"weights").hexdigest()}]
    assert checkpoint_hashes({"name": "ease", "config": {"l2": 50}}) == []


@pytest.fixture(scope="module")
def lrurec_run(inspired, tmp_path_factory) -> Path:
    """A one-epoch lrurec run on INSPIRED (seconds)."""
    previous = torch.get_num_threads()
    run = tmp_path_factory.mktemp("provenance") / "lrurec-inspired"
    options = {**NETWORK, "run_dir": str(run),
               "train": {"epochs": 1, "batch_size": 64, "lr": 0.01, "patience": 1, "threads": 1}}
    build_recommender("lrurec", inspired.catalog, options).fit(inspired.split("train"), inspired.split("valid"))
    torch.set_num_threads(previous)
    return run


def check_provenance(record: dict, checkpoints: list[dict]) -> None:
    recorded = record["provenance"]
    assert recorded["versions"] == versions() and recorded["checkpoints"] == checkpoints
    here = git_state(Path(provenance_module.__file__).parent)
    assert recorded.get("git") == here  # absent when convrec is not a git checkout
    assert record["data_hash"]


def test_eval_json_records_the_loaded_checkpoints_hash(run_cli, inspired, data_dir, mirror, lrurec_run, tmp_path):
    out = tmp_path / "eval.json"
    options = [arg for key, value in NETWORK.items() for arg in ("--set", f"{key}={json.dumps(value)}")]
    result = run_cli("eval", "--dataset", "inspired", "--recommender", "lrurec", "--checkpoint", lrurec_run,
                     "--limit", "20", "--json", out, "--quiet", "--data-dir", data_dir, "--mirror", mirror, *options)
    assert result.rc == 0, result.err
    weights = (lrurec_run / "model.safetensors").read_bytes()
    check_provenance(json.loads(out.read_text()),
                     [{"path": str(lrurec_run), "sha256": hashlib.sha256(weights).hexdigest()}])


def test_results_json_records_provenance_per_result(run_cli, inspired, data_dir, mirror, tmp_path):
    config = tmp_path / "exp.toml"
    config.write_text('name = "mini"\ndatasets = ["inspired"]\nprotocols = ["standard"]\n'
                      '[[recommenders]]\nname = "popularity"\n')
    result = run_cli("results", "--config", config, "--out", tmp_path / "res", "--quiet", "--data-dir", data_dir,
                     "--mirror", mirror)
    assert result.rc == 0, result.err
    [record] = json.loads((tmp_path / "res" / "mini.json").read_text())["results"]
    check_provenance(record, [])
