"""docs/serve.md's curl examples run as written (the ``<!-- api-example -->`` block, with bash and curl) against a
real ``convrec serve`` with a token, and print what the page says they do."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from http_testing import start_server

from convrec.data.dataset import CRSDataset

PAGE = Path(__file__).resolve().parents[2] / "docs" / "serve.md"
EXAMPLE = re.compile(r"<!-- api-example -->\s*```bash\n(.*?)```", re.S)
TOKEN = "docs-token-0123456789abcdef"


@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("bash") is None, reason="needs bash and curl")
def test_the_api_examples_of_the_serve_page_work(redial: CRSDataset, mirror: Path, data_dir: Path, tmp_path: Path):
    [block] = EXAMPLE.findall(PAGE.read_text(encoding="utf-8"))
    server = start_server(tmp_path, mirror, data_dir, tmp_path / "sessions.sqlite3", token=TOKEN, name="docs")
    try:
        env = {**os.environ, "BASE": server.base, "CONVREC_SERVE_TOKEN": TOKEN}
        run = subprocess.run(["bash", "-euo", "pipefail", "-c", block], env=env, capture_output=True, text=True,
                             timeout=120)
    finally:
        server.stop()
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("How about ") and "(" in lines[0]  # the reply names a recommendation
    assert lines[1] == "True"  # the same client_message_id: replayed
    assert lines[2] == "Blade Runner (1982)"
    assert lines[3].endswith("{'liked': None, 'seen': True}}")
    assert lines[4:7] == ["True", "2", "204"]  # answered in the history; reset: conversation 2; deleted
    assert lines[7] == "convrec_turns_total 1.0"  # one turn ran: the replay ran nothing
