"""`genesis-drive generate --scene FILE`: a scene file rendered with SynthTown, then generated from; the
generated root carries the scene's layout (a moved agent moves in it); bad files are one line."""

from __future__ import annotations

import numpy as np

from genesis_drive.cli import main
from genesis_drive.data.nuscenes import NuScenesReader
from genesis_drive.scene.io import save_scene

from ..generate.tiny_checkpoints import save_dit, save_vae

RUN = ["--modalities", "camera", "--steps", "1", "--guidance", "1", "--no-progress"]


def _car_near(root, xy: np.ndarray) -> np.ndarray:
    """Centre (global, m) of the first keyframe's car annotation nearest ``xy``."""
    r = NuScenesReader(root)
    tok = r.sample_tokens(r.scene_tokens()[0])[0]
    boxes = [b for b in r.boxes(tok) if b.category == "vehicle.car"]
    return np.asarray(min(boxes, key=lambda b: float(np.linalg.norm(np.asarray(b.center[:2]) - xy))).center)


def test_generate_from_a_scene_file(town_scene, tmp_path, capsys):
    ckpts = tmp_path / "ckpt"
    save_dit(ckpts / "camera_dit", save_vae(ckpts / "camera_vae"))
    lead = town_scene.get("lead").track[0]
    xy = np.array([lead.x, lead.y])
    outs = {}
    for name, scene in (("a", town_scene), ("b", town_scene.move_agent("lead", dx=3.0, dy=0.0))):
        path = save_scene(scene, tmp_path / f"{name}.yaml")
        out, ref = tmp_path / f"gen_{name}", tmp_path / f"ref_{name}"
        assert main(["generate", "--scene", str(path), "--out", str(out), "--scene-root", str(ref),
                     "--checkpoints", str(ckpts), *RUN]) == 0  # fmt: skip
        gen, real = NuScenesReader(out), NuScenesReader(ref)
        assert gen.sample_tokens(gen.scene_tokens()[0]) == real.sample_tokens(real.scene_tokens()[0])
        outs[name] = out
    # the generated roots carry the scene's layout: the lead car moved by 3 m in x
    np.testing.assert_allclose(_car_near(outs["b"], xy + [3.0, 0.0]) - _car_near(outs["a"], xy), [3.0, 0.0, 0.0], atol=1e-3)
    # without --scene-root the rendered reference is temporary: nothing but OUT is left
    path = save_scene(town_scene, tmp_path / "solo" / "s.yaml")
    assert main(["generate", "--scene", str(path), "--out", str(tmp_path / "solo" / "out"), "--checkpoints", str(ckpts), *RUN]) == 0
    assert sorted(p.name for p in (tmp_path / "solo").iterdir()) == ["out", "s.yaml"]
    capsys.readouterr()


def test_bad_scene_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("format: genesis-drive/scene/v1\nname: x\nduration: abc\n")
    assert main(["generate", "--scene", str(bad), "--out", str(tmp_path / "out"), "--modalities", "camera"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "duration" in err[0], err
    assert main(["generate", "--scene", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "out")]) == 1
    assert "scene file not found" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]
