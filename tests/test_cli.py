"""``python -m lightning_kg``: the verbs it lists, and what it refuses (an unknown verb, an unknown or
mistyped key)."""

import pytest

from lightning_kg.cli import main


def test_help_lists_every_verb(capsys):
    main(["--help"])
    printed = capsys.readouterr().out
    for verb in ("prepare", "fit", "validate", "test", "export", "probe"):
        assert f"\n  {verb} " in printed
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    assert capsys.readouterr().out.startswith("usage: python -m lightning_kg [options] fit ")


def test_unknown_keys_and_verbs_are_rejected(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--model.mep_weigth", "0.5"])
    assert "mep_weigth" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["fit", "--trainer.max_steps", "many"])
    assert "trainer.max_steps" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train"])
    assert "unknown verb 'train'" in capsys.readouterr().err
