from dataclasses import dataclass, field

import pytest

from posekit.config import load_config, save_config
from posekit.errors import BadInputError, CorruptFileError, MissingFileError


@dataclass
class Sensor:
    sigma: float = 0.001
    dropout: float = 0.0


@dataclass
class Cfg:
    name: str = "x"
    steps: int = 10
    sizes: list = field(default_factory=lambda: [1, 2])
    sensor: Sensor = field(default_factory=Sensor)


def test_defaults_file_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("steps: 20\nsensor:\n  sigma: 2\n")
    cfg = load_config(Cfg, p, ["sensor.dropout=0.5", "name=run1"])
    assert cfg.steps == 20 and cfg.sensor.sigma == 2.0 and isinstance(cfg.sensor.sigma, float)
    assert cfg.sensor.dropout == 0.5 and cfg.name == "run1" and cfg.sizes == [1, 2]
    out = save_config(cfg, tmp_path / "saved.yaml")
    assert load_config(Cfg, out) == cfg


def test_unknown_key_and_wrong_type_are_errors(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("stepz: 3\n")
    with pytest.raises(BadInputError, match="stepz"):
        load_config(Cfg, p)
    with pytest.raises(BadInputError, match="steps"):
        load_config(Cfg, None, ["steps=abc"])
    with pytest.raises(BadInputError, match="key.subkey=value"):
        load_config(Cfg, None, ["steps"])


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(MissingFileError):
        load_config(Cfg, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(CorruptFileError):
        load_config(Cfg, bad)
