"""``convrec align``: its settings are listed and checked before anything heavy is loaded."""

from __future__ import annotations

import pytest

from convrec.cli.main import main


def test_list_settings_names_every_setting_with_its_default(capsys, tmp_path):
    assert main(["align", "--dataset", "redial", "--checkpoint", str(tmp_path), "--out", str(tmp_path / "o"),
                 "--list-settings"]) == 0
    text = capsys.readouterr().err
    for name in ("method", "group_size", "beta", "kl_coef", "nll_weight", "reward_k", "refresh_reference"):
        assert name in text
    assert "'grpo'" in text


def test_bad_settings_and_missing_checkpoint_are_clear_errors(capsys, tmp_path):
    assert main(["align", "--dataset", "redial", "--checkpoint", str(tmp_path), "--out", str(tmp_path / "o"),
                 "--set", "group_size=1"]) == 2
    assert "group_size" in capsys.readouterr().err
    assert main(["align", "--dataset", "redial", "--checkpoint", str(tmp_path / "none"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "no such folder" in capsys.readouterr().err
    config = tmp_path / "align.toml"
    config.write_text("rounds = 'many'\n")
    assert main(["align", "--dataset", "redial", "--checkpoint", str(tmp_path), "--out", str(tmp_path / "o"),
                 "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "align.toml" in err and "rounds" in err


def test_help_explains_the_loop(capsys):
    with pytest.raises(SystemExit):
        main(["align", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "L = L_rl + lambda * L_nll" in text and "resumes" in text
