"""Typed config utilities: dotted overrides, YAML override files, strict dict/file round trips."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Optional

import pytest

from genesis_drive.config import (
    apply_overrides,
    config_from_dict,
    config_from_saved,
    config_to_dict,
    load_config,
    load_yaml_overrides,
    resolve_preset,
    save_config,
)
from genesis_drive.errors import ConfigError


@dataclass(frozen=True)
class Optim:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: Literal["constant", "cosine"] = "constant"
    clip: Optional[float] = 1.0


@dataclass(frozen=True)
class Model:
    widths: tuple[int, ...] = (32, 64)
    depth: int = 2
    name: str = "ae"
    use_bias: bool = True
    views: list[str] = field(default_factory=lambda: ["CAM_FRONT"])
    weights: Optional[Path] = None
    levels: Literal[1, 2, 4] = 2

    def __post_init__(self) -> None:
        if len(self.widths) != self.depth:
            raise ConfigError(f"model.widths needs depth={self.depth} entries, got {len(self.widths)}")


@dataclass(frozen=True)
class Run:
    model: Model = field(default_factory=Model)
    optim: Optim = field(default_factory=Optim)
    steps: int = 10


def test_overrides_parse_each_type_and_leave_the_original_untouched():
    base = Run()
    cfg = apply_overrides(base, [
        "optim.lr=1e-4", "optim.betas=(0.5, 0.75)", "optim.schedule=cosine", "optim.clip=none",
        "model.widths=[8,16,32]", "model.depth=3", "model.name=vae=big", "model.use_bias=off",
        "model.views=CAM_FRONT,CAM_BACK", "model.weights=/w/ae.safetensors", "model.levels=4", "steps=1_000",
    ])
    assert cfg.optim == Optim(lr=1e-4, betas=(0.5, 0.75), schedule="cosine", clip=None)
    assert cfg.model == Model(widths=(8, 16, 32), depth=3, name="vae=big", use_bias=False,
                              views=["CAM_FRONT", "CAM_BACK"], weights=Path("/w/ae.safetensors"), levels=4)
    assert cfg.steps == 1000 and isinstance(cfg.optim.lr, float)
    assert base == Run()
    assert apply_overrides(base, ["model.use_bias=TRUE"]).model.use_bias is True
    assert apply_overrides(base, ["optim.lr=3"]).optim.lr == 3.0


def test_post_init_sees_the_final_combination_not_each_override():
    # widths alone (3 entries, depth 2) would be invalid; with depth=3 in the same call it is fine
    assert apply_overrides(Run(), ["model.widths=1,2,3", "model.depth=3"]).model.depth == 3
    with pytest.raises(ConfigError, match="model.widths needs depth=2 entries, got 3"):
        apply_overrides(Run(), ["model.widths=1,2,3"])


@pytest.mark.parametrize("override, message", [
    ("steps=ten", r"steps: expected int, got 'ten'"),
    ("steps=1.5", r"steps: expected int, got '1.5'"),
    ("optim.lr=fast", r"optim.lr: expected float, got 'fast'"),
    ("model.use_bias=maybe", r"model.use_bias: expected bool, got 'maybe'"),
    ("optim.betas=0.9", r"optim.betas: expected tuple\[float, float\] \(comma separated\), got '0.9'"),
    ("optim.schedule=step", r"optim.schedule: expected one of 'constant', 'cosine', got 'step'"),
    ("model.levels=3", r"model.levels: expected one of 1, 2, 4, got '3'"),
    ("optim.clip=big", r"optim.clip: expected float or None, got 'big'"),
    ("optim.lrr=1", r"unknown key 'optim.lrr': Optim has no field 'lrr' .*did you mean 'lr'\?"),
    ("optimizer.lr=1", r"unknown key 'optimizer.lr': Run has no field 'optimizer'"),
    ("optim.lr.x=1", r"'optim.lr' is a value of type float, not a section"),
    ("optim=1", r"optim is a section; set its fields instead \(optim.lr, "),
    ("steps", r"expected KEY=VALUE"),
    ("=3", r"empty key"),
    ("optim..lr=3", r"empty name between dots"),
])
def test_override_errors_name_key_expected_type_and_value(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(Run(), [override])


def test_typed_mapping_overrides_as_from_yaml():
    cfg = apply_overrides(Run(), {"optim.lr": "1e-5", "optim.betas": [0.1, 0.2], "steps": 3, "model.use_bias": False})
    assert cfg.optim.lr == 1e-5 and cfg.optim.betas == (0.1, 0.2) and cfg.steps == 3 and not cfg.model.use_bias
    with pytest.raises(ConfigError, match=r"steps: expected int, got 2.5"):
        apply_overrides(Run(), {"steps": 2.5})
    with pytest.raises(ConfigError, match=r"steps: expected int, got True"):
        apply_overrides(Run(), {"steps": True})
    with pytest.raises(ConfigError, match="list of KEY=VALUE strings"):
        apply_overrides(Run(), "steps=3")


def test_yaml_override_file(tmp_path):
    f = tmp_path / "over.yaml"
    f.write_text("optim:\n  lr: 1e-4      # PyYAML reads this as a string\n  betas: [0.8, 0.9]\nsteps: 7\n")
    flat = load_yaml_overrides(f)
    assert flat == {"optim.lr": "1e-4", "optim.betas": [0.8, 0.9], "steps": 7}
    cfg = apply_overrides(Run(), flat)
    assert cfg.optim.lr == 1e-4 and cfg.optim.betas == (0.8, 0.9) and cfg.steps == 7
    (tmp_path / "empty.yaml").write_text("")
    assert load_yaml_overrides(tmp_path / "empty.yaml") == {}
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="list.yaml: expected a mapping"):
        load_yaml_overrides(tmp_path / "list.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_yaml_overrides(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="missing.yaml: cannot read"):
        load_yaml_overrides(tmp_path / "missing.yaml")


def test_dict_round_trip_is_plain_and_strict():
    cfg = apply_overrides(Run(), ["model.weights=/x/w.bin", "optim.clip=none"])
    d = config_to_dict(cfg)
    assert d["model"]["widths"] == [32, 64] and d["model"]["weights"] == "/x/w.bin" and d["optim"]["clip"] is None
    assert json.loads(json.dumps(d)) == d
    assert config_from_dict(Run, d) == cfg
    extra = {**d, "optim": {**d["optim"], "momentum": 0.9}}
    with pytest.raises(ConfigError, match="unknown key 'optim.momentum'"):
        config_from_dict(Run, extra)
    missing = {**d, "model": {k: v for k, v in d["model"].items() if k != "depth"}}
    with pytest.raises(ConfigError, match=r"missing key 'model.depth' \(int\)"):
        config_from_dict(Run, missing)
    with pytest.raises(ConfigError, match=r"model.widths: expected tuple\[int, ...\]"):
        config_from_dict(Run, {**d, "model": {**d["model"], "widths": "wide"}})
    # a config saved by an earlier version: missing keys take their defaults (and are named), unknown ones still fail
    old, filled = config_from_saved(Run, missing)
    assert old == replace(cfg, model=replace(cfg.model, depth=Run().model.depth)) and filled == ["model.depth"]
    assert config_from_saved(Run, d) == (cfg, [])
    with pytest.raises(ConfigError, match="unknown key 'optim.momentum'"):
        config_from_saved(Run, extra)


@pytest.mark.parametrize("name", ["run.yaml", "run.json"])
def test_save_and_load_round_trip_atomically(tmp_path, name):
    cfg = apply_overrides(Run(), ["optim.lr=2.5e-4", "model.views=A,B"])
    path = save_config(cfg, tmp_path / name)
    assert load_config(Run, path) == cfg
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary left behind
    save_config(apply_overrides(cfg, ["steps=99"]), path)
    assert load_config(Run, path).steps == 99
    with pytest.raises(ConfigError, match=r"\.yaml, \.yml or \.json"):
        save_config(cfg, tmp_path / "run.toml")


def test_resolve_preset_calls_functions_and_names_choices():
    presets = {"tiny": lambda: Run(steps=1), "full": Run(steps=100)}
    assert resolve_preset(presets, "tiny").steps == 1
    assert resolve_preset(presets, "full").steps == 100
    with pytest.raises(ConfigError, match=r"unknown preset 'tinny' \(choose from: tiny, full\); did you mean 'tiny'"):
        resolve_preset(presets, "tinny")
