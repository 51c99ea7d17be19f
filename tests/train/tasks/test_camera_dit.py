"""camera-dit task: builds on a saved test-size VAE, one loop step with the VAE frozen and out of the
checkpoint, one batch overfits, a given first latent frame is clean in x_t and out of the loss,
caption embeddings reach the DiT, the detail-weighted loss, config checks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from genesis_drive.config import config_from_dict, config_to_dict
from genesis_drive.diffusion.flow import sample_time
from genesis_drive.errors import ConfigError, DataError
from genesis_drive.models.camera.vae import VideoVAE, VideoVAEConfig
from genesis_drive.train import checkpoint as ckpt
from genesis_drive.train.loop import train
from genesis_drive.layout.camera import frame_detail_mask, frame_layout
from genesis_drive.train.tasks.camera_dit import (CAMERA_DIT_TASK, CameraDiTConfig, CameraDiTTask, DropConfig,
                                                  latent_cell_mask, sample_drop, to_latents)  # fmt: skip
from genesis_drive.train.tasks.camera_dit import test as dit_test_preset
from genesis_drive.train.tasks.camera_vae import CameraVAEConfig
from genesis_drive.train.tasks.clip_task import ClipCut

VAE_CFG = VideoVAEConfig(widths=(12, 12, 12), time_down=(True, True), time_kernels=(3, 3, 3), groups=4, latent_channels=4,
                         patch_size=2, blocks_per_level=1, decoder_blocks_per_level=1, mid_blocks=1)  # fmt: skip


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory) -> Path:
    """A camera-vae run directory holding one checkpoint of a random test-size VAE (8x, 4x, 4 channels)."""
    run = tmp_path_factory.mktemp("vae") / "run"
    torch.manual_seed(5)
    vae = VideoVAE(VAE_CFG)
    vcfg = CameraVAEConfig(model=VAE_CFG, image_size=(64, 32), clips=ClipCut(num_frames=5, rate="camera"))
    ckpt.save_checkpoint(run, 1, model=vae.state_dict(), optimizer={}, ema=None,
                         state={"task": "camera-vae", "config": config_to_dict(vcfg)}, keep_last=1)  # fmt: skip
    return run


@pytest.fixture(scope="module")
def task_and_batch(root, vae_dir):
    cfg = dataclasses.replace(dit_test_preset(), vae=str(vae_dir))
    task = CAMERA_DIT_TASK.build(cfg, root)
    ds = task.train_dataset()
    batch = task.collate([ds[0], ds[1]])
    return task, batch


def _model(task: CameraDiTTask, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return task.build_model()


def _loss(task, model, batch, seed=1) -> torch.Tensor:
    torch.manual_seed(seed)  # the same times, noise, given frames and dropout every call
    return task.loss(model, batch)["loss"]


def test_batch_and_latents(task_and_batch):
    task, batch = task_and_batch
    assert batch["images"].shape == (2, 2, 5, 3, 32, 64) and batch["images"].dtype == torch.uint8
    assert batch["layout"].shape == (2, 2, 5, 3, 32, 64) and batch["intrinsics"].shape == (2, 2, 3, 3)
    # the handmade root's images are flat colours: the clip's frames differ, so do its two clips
    assert not torch.equal(batch["images"][0], batch["images"][1])
    assert set(task.frozen_modules()) == {"vae"} and not any(p.requires_grad for p in task.vae.parameters())


def test_one_loop_step_vae_frozen_and_not_saved(task_and_batch, tmp_path):
    task, _ = task_and_batch
    before = {k: v.clone() for k, v in task.vae.state_dict().items()}
    cfg = dataclasses.replace(task.cfg, train=dataclasses.replace(task.cfg.train, preview_samples=1))
    res = train(task, cfg, tmp_path / "run", task_name="camera-dit")
    assert res.step == 1 and torch.isfinite(torch.tensor(res.metrics["loss"]))
    saved = ckpt.read_checkpoint(res.checkpoint)
    assert set(saved.model) == set(task.build_model().state_dict())  # the DiT only: no VAE weights
    assert saved.state["frozen"] == {"vae": task.vae.version}  # ... but which VAE it was trained with
    assert all(torch.equal(before[k], v) for k, v in task.vae.state_dict().items())
    assert not task.vae.training
    assert [p.name for p in (tmp_path / "run").rglob("*.mp4")] == ["step_00000001_sample.mp4"]


def test_preview_rows_and_determinism(task_and_batch):
    task, batch = task_and_batch
    model = _model(task)
    for p in model.final.parameters():  # a non-zero velocity field (the DiT's output layer starts at zero)
        nn.init.normal_(p, std=0.2)
    out = task.preview(model, batch)["sample"]
    assert out.dtype == np.uint8 and out.shape == (5, 3 * 32, 64, 3)
    real = batch["images"][0, 0].permute(0, 2, 3, 1).numpy()
    lay = batch["layout"][0, 0].permute(0, 2, 3, 1).numpy()
    assert np.array_equal(out[:, :32], real) and np.array_equal(out[:, 32:64], lay)
    assert np.array_equal(task.preview(model, batch)["sample"], out)  # seed 0 noise: the same sample
    # the sample is the VAE decoding of the integrated latents: other weights, another sample
    nn.init.normal_(next(model.final.parameters()), std=0.2)
    assert not np.array_equal(task.preview(model, batch)["sample"][:, 64:], out[:, 64:])


def _overfit(task, model, batch, steps: int) -> list[float]:
    """The losses of ``steps`` Adam steps on one batch (same draws every step)."""
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    losses = []
    for _ in range(steps):
        loss = _loss(task, model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_overfits_one_batch(task_and_batch):
    task, batch = task_and_batch
    losses = _overfit(task, _model(task), batch, 40)
    assert losses[-1] < 0.5 * losses[0], losses


class _Frame0Offset(nn.Module):
    """The DiT with ``offset`` added to its prediction on latent frame 0; records its inputs and conditions."""

    def __init__(self, inner: nn.Module, offset: float):
        super().__init__()
        self.inner, self.offset, self.inputs, self.conds = inner, offset, [], []

    def forward(self, x, time, cond, **kw):
        self.inputs.append((x.detach().clone(), kw["given"].clone()))
        self.conds.append(cond)
        out = self.inner(x, time, cond, **kw)
        return torch.cat([out[:, :, :1] + self.offset, out[:, :, 1:]], dim=2)


def test_given_first_frame_is_clean_and_out_of_the_loss(task_and_batch):
    task, batch = task_and_batch
    inner = _model(task)
    cfg = task.cfg
    try:
        task.cfg = dataclasses.replace(cfg, first_frame_prob=1.0)
        base = _Frame0Offset(inner, 0.0)
        with torch.no_grad():
            l0, l1 = _loss(task, base, batch), _loss(task, _Frame0Offset(inner, 5.0), batch)
        assert torch.allclose(l0, l1, rtol=0, atol=1e-6)
        x, given = base.inputs[0]
        assert given[:, 0].all() and not given[:, 1:].any()
        with torch.no_grad():
            x0 = to_latents(task.vae, batch["images"])
        assert torch.allclose(x[:, :, 0], x0[:, :, 0], atol=1e-6)  # frame 0 clean ...
        assert (x[:, :, 1:] - x0[:, :, 1:]).abs().mean() > 0.05  # ... the others noised
        # never given: frame 0 is trained on, so the offset raises the loss
        task.cfg = dataclasses.replace(cfg, first_frame_prob=0.0)
        with torch.no_grad():
            m0, m1 = _loss(task, _Frame0Offset(inner, 0.0), batch), _loss(task, _Frame0Offset(inner, 5.0), batch)
        assert m1 > m0 + 1.0
    finally:
        task.cfg = cfg


def test_caption_embedding_becomes_caption_global(task_and_batch):
    task, batch = task_and_batch
    emb = torch.randn(2, 384)
    cond = task.conditions({**batch, "caption_embedding": emb})
    assert torch.equal(cond["caption_global"], emb) and cond["caption_global_mask"].tolist() == [True, True]
    assert not task.conditions(batch)["caption_global_mask"].any()  # no manifest: no caption
    assert "images" not in cond and "layout" not in cond
    # ... and reaches the model through the loss
    model = _Frame0Offset(_model(task), 0.0)
    with torch.no_grad():
        _loss(task, model, {**batch, "caption_embedding": emb})
    assert torch.equal(model.conds[0]["caption_global"], emb) and model.conds[0]["caption_global_mask"].all()


def test_sample_drop_rates():
    g = torch.Generator().manual_seed(0)
    d = sample_drop(20000, DropConfig(caption=0.2, ego=0.0, boxes=0.0, pedestrians=0.0, layout=0.5, all=0.1), generator=g)
    assert abs(d["caption"].float().mean().item() - (1 - 0.8 * 0.9)) < 0.015
    assert abs(d["layout"].float().mean().item() - (1 - 0.5 * 0.9)) < 0.015
    assert abs(d["ego"].float().mean().item() - 0.1) < 0.01
    # an all-drop sample drops every group
    every = d["ego"]
    assert all(d[k][every].all() for k in d)


def test_config_checks(vae_dir, root):
    cfg = dataclasses.replace(dit_test_preset(), vae=str(vae_dir))
    with pytest.raises(ConfigError, match="num_frames"):
        dataclasses.replace(cfg, clips=ClipCut(num_frames=1, rate="camera"))
    with pytest.raises(ConfigError, match="conditions.image_size"):
        dataclasses.replace(cfg, image_size=(128, 64))
    with pytest.raises(ConfigError, match="num_classes"):
        dataclasses.replace(cfg, model=dataclasses.replace(
            cfg.model, conditions=dataclasses.replace(cfg.model.conditions, num_classes=3)))  # fmt: skip
    with pytest.raises(ConfigError, match="drop.layout"):
        DropConfig(layout=1.5)
    with pytest.raises(ConfigError, match="latent channels"):
        CameraDiTTask(dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, latent_channels=8)), root)
    with pytest.raises(ConfigError, match="data root"):
        CameraDiTTask(cfg, None)
    for name, frames in (("tiny", 9), ("paper", 17), ("test", 5)):
        preset = CAMERA_DIT_TASK.presets[name]()
        assert preset.clips.num_frames == frames and preset.conditions.image_size == preset.image_size
        assert config_from_dict(CameraDiTConfig, config_to_dict(preset)) == preset  # what resume reads back


def test_latent_cache_fills_once_and_gives_the_same_loss(task_and_batch, tmp_path, monkeypatch):
    task, batch = task_and_batch
    cached = CameraDiTTask(dataclasses.replace(task.cfg, latent_cache=str(tmp_path / "cache")), task.data_root)
    ds = cached.train_dataset()
    cb = cached.collate([ds[0], ds[1]])
    assert "images" not in cb and cb["latents"].shape == (2, 2, 2, 4, 4, 8)
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 2
    torch.testing.assert_close(cb["latents"], to_latents(task.vae, batch["images"]))
    torch.testing.assert_close(cb["layout_latents"], to_latents(task.vae, batch["layout"]))
    model = _model(task)
    torch.testing.assert_close(_loss(cached, model, cb), _loss(task, model, batch))
    # a second visit reads the file: the VAE is not run again
    monkeypatch.setattr(cached, "_encode_item", lambda item: pytest.fail("clip encoded twice"))
    again = CameraDiTTask.train_dataset(cached)
    again.compute = cached._encode_item
    torch.testing.assert_close(again[0]["latents"], ds[0]["latents"])
    assert cached.preview(model, cb)["sample"].shape == (5, 3 * 32, 64, 3)
    # a cache written by another VAE is refused, naming the field
    other = CameraDiTTask(dataclasses.replace(task.cfg, latent_cache=str(tmp_path / "cache")), task.data_root)
    with torch.no_grad():
        next(other.vae.parameters()).add_(1.0)
    with pytest.raises(DataError, match="codec_version"):
        other.train_dataset()[0]


def test_latent_cell_mask_groups_pixels_like_the_causal_vae():
    m = torch.zeros(2, 9, 16, 24, dtype=torch.bool)  # v t h w: 9 frames -> latents [0], [1-4], [5-8]
    m[0, 0, 3, 10] = True  # frame 0 -> latent 0, cell (0, 1)
    m[1, 5, 15, 23] = True  # frame 5 -> latent 2, cell (1, 2)
    m[1, 4, 8, 0] = True  # frame 4 -> latent 1, cell (1, 0)
    cells = latent_cell_mask(m, spatial=8, temporal=4)
    assert cells.shape == (2, 3, 2, 3)
    assert sorted(map(tuple, cells.nonzero().tolist())) == [(0, 0, 0, 1), (1, 1, 1, 0), (1, 2, 1, 2)]
    with pytest.raises(ValueError, match="tile"):
        latent_cell_mask(m[..., :20], spatial=8, temporal=4)
    with pytest.raises(ValueError, match="k \\+ 1"):
        latent_cell_mask(m[:, :8], spatial=8, temporal=4)


def test_detail_weight_weighs_the_cells_of_lines_and_boxes(task_and_batch, tmp_path):
    task, batch = task_and_batch
    w = 3.0
    weighted = CameraDiTTask(dataclasses.replace(task.cfg, detail_weight=w), task.data_root)
    ds = weighted.train_dataset()
    item, clip = ds[0], ds.index.load(0)
    mask = item["detail_mask"]
    assert mask.shape == (2, 2, 4, 8) and mask.dtype == torch.bool  # v t' h' w' of a 5-frame 64 x 32 clip
    assert 0 < mask.float().mean() < 1  # the handmade root has lanes and boxes, and open road
    # the mask's pixels: what the layout draws outside the filled map polygons (lines, boxes)
    drawn = item["layout"].any(dim=2).numpy()  # v t h w
    layout_cfg = task.cfg.conditions.camera_layout
    detail = np.stack([frame_detail_mask(clip, t, layout_cfg, task.cfg.image_size) for t in range(clip.num_frames)], axis=1)
    assert (drawn | ~detail).all() and detail.sum() < drawn.sum()
    assert torch.equal(mask, latent_cell_mask(torch.from_numpy(detail), 8, 4))
    lines_only = frame_layout(clip, 0, dataclasses.replace(layout_cfg, map_polygons=(), map_lines=()), task.cfg.image_size)
    assert lines_only.any() and (detail[:, 0] | ~lines_only.any(axis=-1)).all()  # boxes are part of it
    wb = weighted.collate([ds[0], ds[1]])
    torch.testing.assert_close(wb["images"], batch["images"])

    class Recorder(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.preds = inner, []

        def forward(self, *a, **kw):
            out = self.inner(*a, **kw)
            self.preds.append(out)
            return out

    model = Recorder(_model(task))
    for p in model.inner.final.parameters():  # a non-zero prediction error that differs per cell
        nn.init.normal_(p, std=0.2)
    with torch.no_grad():
        plain, heavy = _loss(task, model, batch), _loss(weighted, model, wb)
    torch.testing.assert_close(model.preds[0], model.preds[1])  # same seed: same inputs, same prediction
    torch.manual_seed(1)
    x0 = to_latents(task.vae, batch["images"])
    b, tl = x0.shape[0], x0.shape[2]
    tc = task.cfg.time
    sample_time(b, kind=tc.kind, mean=tc.mean, std=tc.std, shift=tc.shift)  # the loss's draws, in its order
    noise = torch.randn_like(x0)
    given = torch.rand(b) < task.cfg.first_frame_prob
    err = (model.preds[1] - (noise - x0)) ** 2  # b v t' c h' w'
    keep = torch.ones(b, 1, tl, 1, 1, 1)
    keep[:, 0, 0] = (~given).float().view(b, 1, 1, 1)
    weight = keep * (1 + w * wb["detail_mask"][:, :, :, None].float())
    torch.testing.assert_close(heavy, (err * weight).sum() / torch.broadcast_to(weight, err.shape).sum())
    torch.testing.assert_close(plain, (err * keep).sum() / torch.broadcast_to(keep, err.shape).sum())
    assert not torch.allclose(heavy, plain)
    # the mask travels through the latent cache, which is keyed apart from the unweighted one
    cached = CameraDiTTask(dataclasses.replace(weighted.cfg, latent_cache=str(tmp_path / "cache")), task.data_root)
    cds = cached.train_dataset()
    assert torch.equal(cds[0]["detail_mask"], mask)
    torch.testing.assert_close(_loss(cached, model, cached.collate([cds[0], cds[1]])), heavy)
    with pytest.raises(DataError):
        CameraDiTTask(dataclasses.replace(task.cfg, latent_cache=str(tmp_path / "cache")), task.data_root).train_dataset()[0]
    with pytest.raises(ConfigError, match="detail_weight"):
        dataclasses.replace(task.cfg, detail_weight=-1.0)


def test_a_layout_hint_reads_the_layout_video_cached_or_not_and_learns(task_and_batch, tmp_path):
    task, batch = task_and_batch
    cfg = dataclasses.replace(task.cfg, model=dataclasses.replace(task.cfg.model, layout_hint=8))
    hinted = CameraDiTTask(cfg, task.data_root)
    model = _model(hinted)
    with torch.no_grad():  # a trained-looking hint, so the layout video changes the prediction
        nn.init.normal_(model.layout_hint.out.weight, std=0.1)
    for p in [*model.control_out.parameters(), *model.final.parameters()]:
        nn.init.normal_(p, std=0.1)
    with torch.no_grad():
        plain = _loss(hinted, model, batch)
        blank = _loss(hinted, model, {**batch, "layout": torch.zeros_like(batch["layout"])})
    assert not torch.allclose(plain, blank)  # the hint reads the pixels, not only the layout latents
    # the layout video travels through the latent cache (keyed apart from a cache without it)
    cached = CameraDiTTask(dataclasses.replace(cfg, latent_cache=str(tmp_path / "cache")), task.data_root)
    cds = cached.train_dataset()
    assert torch.equal(cds[0]["layout"], batch["layout"][0]) and "layout_latents" in cds[0]
    cb = cached.collate([cds[0], cds[1]])
    with torch.no_grad():
        torch.testing.assert_close(_loss(cached, model, cb), plain)
    with pytest.raises(DataError):
        CameraDiTTask(dataclasses.replace(task.cfg, latent_cache=str(tmp_path / "cache")), task.data_root).train_dataset()[0]
    losses = _overfit(cached, model, cb, 30)
    assert losses[-1] < 0.5 * losses[0], losses
