"""layout2d task pieces with known answers: material -> class, buffer reading, label geometry, the
dataset's image/label alignment and augmentation, configs. (World-based training: tests/eval/test_layout2d.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genesis_drive.config import apply_overrides
from genesis_drive.data.clips import resize_crop
from genesis_drive.errors import ConfigError, DataError
from genesis_drive.models.evaluators.layout2d import LAYOUT2D_CLASSES, SCORED_CLASSES, Layout2DNet, Layout2DNetConfig
from genesis_drive.train.tasks.layout2d import (
    LAYOUT2D_TASK,
    PRESETS,
    KeyframeCamera,
    Layout2DAugmentConfig,
    Layout2DFrames,
    material_to_class,
    read_class_map,
    resize_crop_labels,
    split_by_scene,
)
from genesis_drive.world.mesh import Material

C = {n: i for i, n in enumerate(LAYOUT2D_CLASSES)}


def test_classes_and_scored_subset():
    assert LAYOUT2D_CLASSES == ("road", "lane_marking", "sidewalk", "vehicle", "cyclist", "pedestrian", "other")
    assert SCORED_CLASSES == LAYOUT2D_CLASSES[:6]


def test_material_to_class_every_material():
    expected = {
        Material.SKY: "other", Material.ROAD: "road", Material.LANE_MARKING: "lane_marking", Material.SIDEWALK: "sidewalk",
        Material.CROSSING: "lane_marking", Material.TERRAIN: "other", Material.BUILDING: "other", Material.VEGETATION: "other",
        Material.POLE: "other", Material.VEHICLE_BODY: "vehicle", Material.VEHICLE_GLASS: "vehicle",
        Material.LICENSE_PLATE: "vehicle", Material.PEDESTRIAN: "pedestrian", Material.CYCLIST: "cyclist",
        Material.BARRIER: "other", Material.LAMP: "other",
    }  # fmt: skip
    assert set(expected) == set(Material)
    mats = np.array([[int(m) for m in expected]], dtype=np.uint8)
    out = material_to_class(mats, np.zeros_like(mats, dtype=np.uint16))
    assert out.dtype == np.uint8 and out.shape == mats.shape
    assert [LAYOUT2D_CLASSES[c] for c in out[0]] == list(expected.values())


def test_lamps_follow_their_instance():
    # vehicle head/tail lamps carry the vehicle's instance id; street and signal lamps are scenery (0)
    mats = np.full((1, 3), int(Material.LAMP), dtype=np.uint8)
    inst = np.array([[0, 7, 65535]], dtype=np.uint16)
    assert material_to_class(mats, inst).tolist() == [[C["other"], C["vehicle"], C["vehicle"]]]
    # instances do not change other materials (a parked car's body, a cone)
    mats = np.array([[Material.VEHICLE_BODY, Material.BARRIER, Material.CYCLIST]], dtype=np.uint8)
    assert material_to_class(mats, np.full((1, 3), 3, np.uint16)).tolist() == [[C["vehicle"], C["other"], C["cyclist"]]]


def test_material_to_class_rejects_unknown_values():
    with pytest.raises(ValueError, match="not a Material"):
        material_to_class(np.array([[16]], np.uint8), np.zeros((1, 1), np.uint16))
    with pytest.raises(ValueError, match="differ in shape"):
        material_to_class(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint16))


def test_read_class_map(tmp_path):
    mat = np.array([[Material.ROAD, Material.LAMP], [Material.PEDESTRIAN, Material.SKY]], np.uint8)
    inst = np.array([[0, 4], [9, 0]], np.uint16)
    np.savez(tmp_path / "ok.npz", depth=np.zeros((2, 2), np.uint16), instance=inst, material=mat)
    assert read_class_map(tmp_path / "ok.npz").tolist() == [[C["road"], C["vehicle"]], [C["pedestrian"], C["other"]]]
    with pytest.raises(DataError, match="not found"):
        read_class_map(tmp_path / "missing.npz")
    np.savez(tmp_path / "nomat.npz", depth=np.zeros((2, 2)), instance=inst)
    with pytest.raises(DataError, match="lacks material"):
        read_class_map(tmp_path / "nomat.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="unreadable"):
        read_class_map(tmp_path / "junk.npz")
    np.savez(tmp_path / "bad.npz", depth=np.zeros((2, 2)), instance=inst, material=np.full((2, 2), 200, np.uint8))
    with pytest.raises(DataError, match="not a Material"):
        read_class_map(tmp_path / "bad.npz")


def test_resize_crop_labels_samples_cell_centres():
    labels = np.arange(16 * 9).reshape(9, 16)
    # same size: identity
    assert np.array_equal(resize_crop_labels(labels, (16, 9)), labels)
    # 2x down-scale of a 32x18 map: output (i, j) covers source [2i, 2i+2): centre sample at 2i+1
    big = np.arange(32 * 18).reshape(18, 32)
    out = resize_crop_labels(big, (16, 9))
    assert np.array_equal(out, big[1::2, 1::2])
    # stride 2 of the 16x9 output: cells of 2x2 output pixels, centres at 4i+2 of the source
    out2 = resize_crop_labels(big, (16, 8), stride=2)
    assert out2.shape == (4, 8) and out2[0, 0] == big[2, 2] and out2[1, 3] == big[6, 14]
    # a 4:3 source at a 16:9 size: cover (width), centre-crop rows as resize_crop does
    sq = np.repeat(np.arange(12)[:, None], 16, axis=1)  # row index as label, 16x12
    out3 = resize_crop_labels(sq, (16, 9))
    assert out3[:, 0].tolist() == list(range(1, 10))  # 12 rows -> crop 9 centred: top = 1
    with pytest.raises(ValueError, match="divisible"):
        resize_crop_labels(big, (15, 9), stride=2)


def test_labels_stay_aligned_with_resize_crop():
    # blocks of a colour per class: after resize_crop (area) and resize_crop_labels (nearest) the
    # colour of every pixel away from block edges tells its label
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 7, size=(9, 16))
    labels = np.kron(blocks, np.ones((16, 16), int))  # 256x144
    palette = rng.integers(0, 256, size=(7, 3)).astype(np.uint8)
    image = palette[labels]
    for size in ((128, 72), (64, 36)):
        small = resize_crop(image, np.eye(3), size)[0]
        lab = resize_crop_labels(labels, size)
        edge = 256 // size[0]
        inner = np.kron(np.ones((9, 16), bool), np.pad(np.ones((16 // edge - 2, 16 // edge - 2), bool), 1))
        assert np.array_equal(small[inner], palette[lab][inner])


def _write_sample(tmp_path: Path, w: int = 256, h: int = 144) -> KeyframeCamera:
    """A left/right split image (left road-grey, right red) with the matching buffer."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 4] = (90, 90, 90)
    img[:, w // 4 :] = (200, 20, 20)
    mat = np.full((h, w), int(Material.PEDESTRIAN), np.uint8)
    mat[:, : w // 4] = Material.ROAD
    Image.fromarray(img).save(tmp_path / "img.jpg", quality=98)
    np.savez(tmp_path / "buf.npz", depth=np.zeros((h, w), np.uint16), instance=np.zeros((h, w), np.uint16), material=mat)
    return KeyframeCamera("scene-a", "s0", "CAM_FRONT", "sd0", 0, tmp_path / "img.jpg", tmp_path / "buf.npz", 0, 1, (w, h))


def test_dataset_items_and_flip_augmentation(tmp_path):
    cam = _write_sample(tmp_path)
    cfg = Layout2DNetConfig(image_size=(64, 36), widths=(8, 16), output_stride=2)
    item = Layout2DFrames([cam], cfg)[0]
    assert item["image"].shape == (3, 36, 64) and item["labels"].shape == (18, 32) and item["labels"].dtype == torch.int64
    assert -1 <= float(item["image"].min()) and float(item["image"].max()) <= 1
    assert (item["labels"][:, :8] == C["road"]).all() and (item["labels"][:, 8:] == C["pedestrian"]).all()
    # red (pedestrian) pixels sit where the labels say pedestrian, flipped or not
    aug = Layout2DAugmentConfig(flip=True, max_zoom=1.0, brightness=0.0, contrast=0.0, saturation=0.0, blur_prob=0.0)
    torch.manual_seed(0)
    flips = set()
    for _ in range(12):
        it = Layout2DFrames([cam], cfg, aug)[0]
        red = (it["image"][0] - it["image"][1] > 0.5)[::2, ::2]  # at label resolution
        ped = it["labels"] == C["pedestrian"]
        assert (red == ped).float().mean() > 0.95
        flips.add(bool(ped[:, 0].all()))
    assert flips == {True, False}  # both orientations were drawn


def test_zoom_augmentation_keeps_alignment(tmp_path):
    cam = _write_sample(tmp_path)
    cfg = Layout2DNetConfig(image_size=(64, 36), widths=(8, 16), output_stride=1)
    aug = Layout2DAugmentConfig(flip=False, max_zoom=1.6, blur_prob=0.0)
    torch.manual_seed(1)
    boundaries = set()
    for _ in range(8):
        it = Layout2DFrames([cam], cfg, aug)[0]
        img = it["image"]
        red = (img[0] - img[1]) > 0.3 * (img[0] - img[1]).max()
        ped = it["labels"] == C["pedestrian"]
        assert (red == ped).float().mean() > 0.95
        boundaries.add(int((~ped[0]).sum()))
    assert len(boundaries) > 1  # the crop moved the road/pedestrian boundary


def test_split_by_scene():
    cams = [KeyframeCamera(f"scene-{s}", f"t{s}{k}", "CAM_FRONT", "", 0, Path("a"), Path("b"), k, 2, (1, 1)) for s in range(8) for k in range(2)]
    val = split_by_scene(cams, 0.25, "val")
    train = split_by_scene(cams, 0.25, "train")
    assert {c.scene for c in val} == {"scene-3", "scene-7"} and len(train) + len(val) == len(cams)
    assert split_by_scene(cams, 0.0, "val") == [] and len(split_by_scene(cams, 0.0, "train")) == 16


def test_network_shapes_and_config_checks():
    for stride in (1, 2):
        cfg = Layout2DNetConfig(image_size=(64, 36), widths=(8, 16, 32), output_stride=stride, full_res_width=8)
        net = Layout2DNet(cfg)
        out = net(torch.zeros(2, 3, 36, 64))
        assert out.shape == (2, len(LAYOUT2D_CLASSES), 36 // stride, 64 // stride) and cfg.output_size == (64 // stride, 36 // stride)
    with pytest.raises(ValueError, match="expects images"):
        net(torch.zeros(1, 3, 32, 64))
    with pytest.raises(ConfigError, match="output_stride"):
        Layout2DNetConfig(output_stride=4)
    with pytest.raises(ConfigError, match="even"):
        Layout2DNetConfig(image_size=(63, 36))
    with pytest.raises(ConfigError, match="class_weights"):
        apply_overrides(PRESETS["tiny"](), ["loss.class_weights=1,2"])
    cfg = apply_overrides(PRESETS["tiny"](), ["data.augment.enabled=false", "loss.dice_weight=0"])
    assert not cfg.data.augment.enabled and cfg.loss.dice_weight == 0
    assert PRESETS["paper"]().model.image_size == (512, 288)
    with pytest.raises(ConfigError, match="--data"):
        LAYOUT2D_TASK.build(PRESETS["tiny"](), None)
