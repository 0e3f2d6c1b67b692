"""The [regularization] section a C-claim experiment relies on, trained from a config."""

import json


def test_regularization_section_trains_from_a_config(tmp_path):
    from dlopt.cli import main

    config = tmp_path / "r.toml"
    config.write_text(
        '[data]\nname = "wine"\n[regularization]\nl1 = 0.01\nproximal = true\n'
        'l2 = 0.001\n[model]\ndropout_mode = "classic"\ndropout = 0.3\n'
        "input_noise = 0.1\n[train]\nepochs = 3\n"
    )
    assert main(["train", str(config), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    history = json.loads((tmp_path / "o" / "history.json").read_text())
    assert {"penalty", "sparsity"} <= set(history[-1])
    bad = tmp_path / "bad.toml"
    bad.write_text("[regularization]\nl1 = -1\n")
    assert main(["train", str(bad)]) == 2
