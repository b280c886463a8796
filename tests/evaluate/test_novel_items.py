"""``python -m convrec.evaluate.novel_items``: a checkpoint that is not an lrurec-text run is one clear line and
exit 2, nothing written."""

from __future__ import annotations

import subprocess
import sys


def test_a_missing_checkpoint_is_one_line_and_exit_2(mirror, data_dir, redial, tmp_path):
    out = tmp_path / "novel"
    proc = subprocess.run([sys.executable, "-m", "convrec.evaluate.novel_items", "--checkpoint",
                           str(tmp_path / "no-such-run"), "--data-dir", str(data_dir), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-2000:]
    assert proc.stderr.startswith("novel_items: error:") and "no-such-run" in proc.stderr
    assert not out.with_suffix(".json").exists() and not out.with_suffix(".md").exists()
