"""Camera DiT speed: our MultiViewDiT vs diffusers' CogVideoXTransformer3DModel at matched size.

    python benchmarks/bench_camera_dit.py [--preset tiny] [--task-preset tiny] [--batch 1] [--threads 1]
        [--warmup 1] [--repeats 3] [--sample-steps 10] [--cfg-scale 4.0] [--no-profile] [--json OUT.json]
        [--clock wall|cpu] [--compile] [--precisions fp32 bf16] [--skip-sampling]

``--compile`` wraps every timed model in ``torch.compile`` (inductor's CPU C++ backend: it fuses the
elementwise work that dominates small-width blocks on a CPU); ``--clock cpu`` times with this
process's CPU seconds, which other jobs on a shared machine inflate far less than wall seconds.

Shapes come from the ``camera-dit`` task preset (``--task-preset``, default ``tiny``): ``v`` views,
``t = (frames - 1) / 4 + 1`` latent frames, the latent grid ``image_size / 8`` (tiny: 6 views x 3
latent frames x 9 x 16 cells, 16 channels); the DiT is ``DIT_PRESETS[--preset](16)``. Everything
is randomly initialised; the condition dict is built with correctly-shaped random tensors of
:class:`~genesis_drive.layout.conditions.ConditionTransform`'s output for the task's
``ConditionConfig`` (:func:`random_conditions`; values do not change the compute: every slot is a
token whether masked or not), and the layout control input is a random latent video of the
latents' shape (as ``CameraDiTTask.loss`` passes the VAE-encoded layout video).

Measured on this CPU, fp32 and bf16 autocast, median of ``--repeats`` after ``--warmup`` (the
training-step repeats of all models and precisions interleaved round-robin):

1. Training step of ours: forward (with the layout control branch, the task's time / first-frame /
   condition-dropout sampling) + flow loss + backward + AdamW step; also without the layout input
   (base blocks only). Tokens/s = video tokens ``b v t (h / p) (w / p)`` per second.
2. The same step of CogVideoXTransformer3DModel built from a config: ``num_attention_heads x
   attention_head_dim`` = our width (our heads, our head width), ``num_layers`` = our depth,
   ``time_embed_dim`` = our width, patch 1x1 (our patch), sinusoidal 3D positions. Video tokens are
   matched by folding the views into CogVideoX's frame axis: its input is ``(b, v t, c, h, w)``
   (frames = views x latent frames), so it sees exactly ``b v t h w / p^2`` video tokens, in one
   joint full-attention sequence with its text tokens. Text tokens = our context length per
   view-frame ``L = 4 + 2 + 4 (1 + boxes + pedestrians)`` (every query of ours cross-attends to
   ``L`` tokens), of our condition width. Also at ``num_layers`` = depth + control_depth (the
   number of blocks our step runs with the control branch). Ratio = our time / its time.
3. Sampling one 6-view clip: ``--sample-steps`` Euler and Heun steps of
   :func:`genesis_drive.diffusion.samplers.sample` (eval mode, no grad, layout given), without and
   with classifier-free guidance (:func:`cfg_batched`: one call on the doubled batch, the second
   half with every condition group dropped).
4. Parameter counts of both models and of the ``paper`` preset (built on the ``meta`` device), and
   the model FLOPs of one training step (:func:`step_flops`; checked against
   ``torch.utils.flop_counter`` on the timed model) so GPU MFU = FLOPs / step time / peak can be
   computed later. No GPU here.

If ours is slower than CogVideoX in fp32, the top ops of one of our fp32 steps
(``torch.profiler``, self CPU time) are printed (``--no-profile`` to skip).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from genesis_drive.data.atomic import atomic_write_json
from genesis_drive.diffusion.flow import add_noise, flow_loss, sample_time, velocity_target
from genesis_drive.diffusion.samplers import cfg_batched, sample
from genesis_drive.layout.conditions import NUM_KEYPOINTS, ConditionConfig
from genesis_drive.models.camera.conditions import CONDITION_GROUPS
from genesis_drive.models.camera.dit import DIT_PRESETS, MultiViewDiT, MultiViewDiTConfig
from genesis_drive.train.tasks.camera_dit import CAMERA_DIT_PRESETS, CameraDiTConfig, sample_drop

if TYPE_CHECKING:
    from diffusers import CogVideoXTransformer3DModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import cpu_name  # noqa: E402


#: Clocks ``--clock`` can time with: wall seconds, or this process's CPU seconds (all its threads;
#: with ``--threads 1`` the robust choice on a machine shared with other jobs, which inflate wall time).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = CLOCKS["wall"]


def timed(fn, warmup: int, repeats: int) -> tuple[float, list[float]]:
    """Median seconds (of the ``--clock``) of ``fn()`` over ``repeats`` calls after ``warmup`` calls, and all times."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = _clock()
        fn()
        times.append(_clock() - t)
    return statistics.median(times), times


# ----------------------------------------------------------------------------- inputs


class Shape:
    """Latent shape of one task preset: ``b`` batch, ``v`` views, ``t`` latent frames, ``c``
    channels, ``h w`` latent cells; ``frames`` camera frames; the condition config."""

    def __init__(self, task: CameraDiTConfig, model: MultiViewDiTConfig, batch: int):
        w_px, h_px = task.image_size
        sf, tf = model.spatial_compression, model.conditions.temporal_compression
        self.b, self.v, self.c = batch, len(task.views), model.latent_channels
        self.frames = task.clips.num_frames
        self.t, self.h, self.w = (self.frames - 1) // tf + 1, h_px // sf, w_px // sf
        self.p = model.patch_size
        self.n = (self.h // self.p) * (self.w // self.p)  # tokens per view-frame
        self.cond: ConditionConfig = task.conditions
        self.context = 4 + 2 + tf * (1 + self.cond.tokens.max_boxes + self.cond.max_pedestrians)  # L per view-frame
        self.image_size = task.image_size

    @property
    def latents(self) -> tuple[int, ...]:
        return (self.b, self.v, self.t, self.c, self.h, self.w)

    @property
    def video_tokens(self) -> int:
        return self.b * self.v * self.t * self.n


def random_conditions(s: Shape, gen: torch.Generator, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """A batch of :class:`ConditionTransform` outputs with its keys, shapes and dtypes (random
    values in plausible ranges; the keys :class:`MultiViewDiT` reads). Cameras: a pinhole of 70
    degrees horizontal field of view for ``image_size`` at ``v`` evenly spaced yaws, OpenCV axes
    (x right, y down, z forward) in the ego frame (x forward, y left, z up), 1.6 m up."""
    b, v, T = s.b, s.v, s.frames
    n, p, k, e = s.cond.tokens.max_boxes, s.cond.max_pedestrians, NUM_KEYPOINTS, s.cond.caption_dim
    w, h = s.image_size
    f = 0.5 * w / math.tan(math.radians(35.0))
    intr = torch.tensor([[f, 0.0, w / 2], [0.0, f, h / 2], [0.0, 0.0, 1.0]])
    c2e = torch.zeros(v, 4, 4)
    for i in range(v):
        yaw = -2 * math.pi * i / v
        c, sn = math.cos(yaw), math.sin(yaw)
        c2e[i, :3, 0] = torch.tensor([sn, -c, 0.0])  # camera x (right)
        c2e[i, :3, 1] = torch.tensor([0.0, 0.0, -1.0])  # camera y (down)
        c2e[i, :3, 2] = torch.tensor([c, sn, 0.0])  # camera z (forward)
        c2e[i, :3, 3] = torch.tensor([1.0, 0.0, 1.6])
        c2e[i, 3, 3] = 1.0

    def rand(*shape):
        return torch.rand(*shape, generator=gen)

    def first_k(*lead, slots):  # bool (... slots): a random number of leading slots valid
        count = torch.randint(0, slots + 1, lead, generator=gen)
        return torch.arange(slots) < count[..., None]

    centre = (rand(b, T, n, 1, 3) - 0.5) * torch.tensor([80.0, 80.0, 2.0])
    size = torch.tensor([4.5, 2.0, 1.6])
    signs = torch.tensor([[sx, sy, sz] for sx in (1, -1) for sy in (1, -1) for sz in (1, -1)], dtype=torch.float32)
    cond = {
        "intrinsics": intr.expand(b, v, 3, 3).clone(),
        "cam_to_ego": c2e.expand(b, v, 4, 4).clone(),
        "box_corners": centre + 0.5 * signs * size,  # b T n 8 3 metres
        "box_class": torch.randint(0, len(s.cond.tokens.classes), (b, T, n), generator=gen),
        "box_track": torch.arange(n).expand(b, T, n).clone(),
        "box_mask": first_k(b, T, slots=n),
        "ped_keypoints_2d": rand(b, v, T, p, k, 2),
        "ped_depth": 1.0 + 30.0 * rand(b, v, T, p, k),
        "ped_visible_2d": rand(b, v, T, p, k) > 0.3,
        "ped_view_mask": rand(b, v, T, p) > 0.5,
        "ped_track": torch.randint(0, n, (b, T, p), generator=gen),
        "ped_mask": first_k(b, T, slots=p),
        "ego": torch.stack([torch.linspace(0, 8, T), torch.zeros(T), torch.zeros(T), torch.full((T,), 8.0)], -1).expand(b, T, 4).clone(),
        "caption_global": torch.randn(b, e, generator=gen),
        "caption_global_mask": torch.ones(b, dtype=torch.bool),
        "caption_views": torch.randn(b, v, e, generator=gen),
        "caption_views_mask": torch.ones(b, v, dtype=torch.bool),
    }  # fmt: skip
    return {key: x.to(device) for key, x in cond.items()}


# ----------------------------------------------------------------------------- models


def cogvideox_matched(model: MultiViewDiTConfig, s: Shape, num_layers: int) -> CogVideoXTransformer3DModel:
    """CogVideoX transformer of our width (heads x head width), ``num_layers`` blocks, patch ``p``,
    text tokens of our condition width, sized for ``v t`` frames of ``h x w`` latents."""
    from diffusers import CogVideoXTransformer3DModel  # here: bench_dit_device imports this module where diffusers is absent

    return CogVideoXTransformer3DModel(
        num_attention_heads=model.heads, attention_head_dim=model.width // model.heads, in_channels=s.c,
        out_channels=s.c, time_embed_dim=model.width, text_embed_dim=model.conditions.dim, num_layers=num_layers,
        sample_width=s.w, sample_height=s.h, sample_frames=(s.v * s.t - 1) * 4 + 1, patch_size=s.p,
        temporal_compression_ratio=4, max_text_seq_length=s.context,
    )  # fmt: skip


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# ----------------------------------------------------------------------------- steps


def our_step(model: MultiViewDiT, task: CameraDiTConfig, s: Shape, cond: dict, opt: torch.optim.Optimizer,
             bf16: bool, with_layout: bool, gen: torch.Generator, device: torch.device = torch.device("cpu")):
    """One training step as ``CameraDiTTask.loss`` + the loop: sample time / noise / given / drop,
    forward under autocast, flow loss in fp32, backward, AdamW step. Random draws on the CPU
    (``gen``), moved to ``device``, where the model, ``cond`` and the step run."""
    x0 = torch.randn(s.latents, generator=gen).to(device)
    layout = torch.randn(s.latents, generator=gen).to(device) if with_layout else None
    tc = task.time
    t = sample_time(s.b, kind=tc.kind, mean=tc.mean, std=tc.std, shift=tc.shift, generator=gen).to(device)
    noise = torch.randn(s.latents, generator=gen).to(device)
    given = torch.zeros(s.b, s.t, dtype=torch.bool)
    given[:, 0] = torch.rand(s.b, generator=gen) < task.first_frame_prob
    given = given.to(device)
    g6 = given[:, None, :, None, None, None]
    xt = torch.where(g6, x0, add_noise(x0, noise, t))
    drop = {k: v.to(device) for k, v in sample_drop(s.b, task.drop, generator=gen).items()}
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        pred = model(xt, t, cond, layout=layout, given=given, drop=drop)
    loss = flow_loss(pred.float(), velocity_target(x0, noise), ~g6)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def cog_step(model: CogVideoXTransformer3DModel, s: Shape, text_dim: int, opt: torch.optim.Optimizer, bf16: bool,
             gen: torch.Generator):
    """The same step of CogVideoX: views folded into frames ``(b, v t, c, h, w)``, text ``(b, L, dc)``,
    timestep in [0, 1000), MSE to a random velocity target."""
    x = torch.randn(s.b, s.v * s.t, s.c, s.h, s.w, generator=gen)
    target = torch.randn(x.shape, generator=gen)
    text = torch.randn(s.b, s.context, text_dim, generator=gen)
    t = torch.rand(s.b, generator=gen) * 1000
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        pred = model(x, text, t, return_dict=False)[0]
    loss = F.mse_loss(pred.float(), target)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def sample_clip(model: MultiViewDiT, s: Shape, cond: dict, layout: torch.Tensor, steps: int, method: str,
                cfg_scale: float | None, bf16: bool) -> torch.Tensor:
    """One ``b``-clip sample from noise (seed 0); with ``cfg_scale`` the batched guidance of
    :func:`cfg_batched` (second half: every condition group dropped)."""
    gen = torch.Generator().manual_seed(0)
    if cfg_scale is None:
        v = lambda x, t: model(x, t, cond, layout=layout).float()  # noqa: E731
    else:
        cond2 = {k: torch.cat([x, x]) for k, x in cond.items()}
        layout2 = torch.cat([layout, layout])
        drop = {g: torch.arange(2 * s.b) >= s.b for g in CONDITION_GROUPS}
        v = cfg_batched(lambda x, t: model(x, t, cond2, layout=layout2, drop=drop).float(), cfg_scale)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return sample(v, s.latents, steps=steps, method=method, generator=gen)


# ----------------------------------------------------------------------------- FLOPs


def step_flops(model: MultiViewDiTConfig, s: Shape, with_layout: bool = True) -> dict[str, float]:
    """Model FLOPs of one training step (forward + backward = 3 x forward; gradient-checkpointing
    recompute not counted), from the shapes.

    Dense term ``6 x weights x tokens`` per weight group, each with the tokens it acts on:
    per block (base ``depth``, plus ``control_depth`` with the layout): ``20 d^2`` weights on the
    ``N = b v t n`` video tokens (spatial q k v o, cross q o, cross-view q o, temporal q k v o,
    MLP ``2 r d^2``, with ``r = mlp_ratio = 4``), the cross-view k v ``2 d^2`` on ``2 N`` (each
    view-frame's keys are its two neighbours' tokens), cross k v ``2 d dc`` on the ``b v t L``
    context tokens; patch / ray / final embeddings and the control in / out projections on ``N``.
    The adaLN and time embedding (on ``b t`` vectors) and condition encoders are left out (< 0.1%).
    Attention term ``3 x 4 Nq Nk d`` per attention (``Q K^T`` and ``A V``, 2 FLOPs per multiply-add):
    spatial ``n x n`` per view-frame, cross ``n x L``, cross-view ``n x 2n`` (``"neighbours"``; ``"all"``:
    ``v n x v n`` per frame), temporal ``t x t`` per view and cell.
    """
    d, dc, r, p = model.width, model.conditions.dim, model.mlp_ratio, model.patch_size
    b, v, t, n, L, c = s.b, s.v, s.t, s.n, s.context, s.c
    N, vf = b * v * t * n, b * v * t
    blocks = model.depth + (model.control_depth if with_layout else 0)
    per_token = (4 + 2 + 2 + 4) * d * d + 2 * r * d * d
    kv_view = 2 * d * d * (2 if model.cross_view == "neighbours" else 1)
    dense_block = 6 * (per_token * N + kv_view * N + 2 * d * dc * vf * L)
    embed = 6 * N * (c * p * p * d + 6 * p * p * d + d * p * p * c + (c * p * p * d + 2 * d * d) * with_layout)
    if model.cross_view == "neighbours":
        view_attn = vf * n * 2 * n
    else:
        view_attn = b * t * (v * n) ** 2
    attn_block = 3 * 4 * d * (vf * n * n + vf * n * L + view_attn + b * v * n * t * t)
    return {"dense": blocks * dense_block + embed, "attention": blocks * attn_block,
            "total": blocks * (dense_block + attn_block) + embed}


def cog_step_flops(heads: int, head_dim: int, layers: int, s: Shape, text_dim: int) -> dict[str, float]:
    """The same rule for CogVideoX: ``12 d^2 + 2 x 4 d^2`` (qkv o + GELU MLP of ratio 4) on the
    ``N + L`` joint tokens per layer, full attention over ``N + L`` per sample, the patch / text /
    output projections."""
    d = heads * head_dim
    N = s.video_tokens
    M = N + s.b * s.context
    dense = layers * 6 * 12 * d * d * M + 6 * (N * s.c * s.p * s.p * d * 2 + s.b * s.context * text_dim * d)
    attn = layers * 3 * 4 * d * s.b * (M // s.b) ** 2
    return {"dense": dense, "attention": attn, "total": dense + attn}


def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_sdpa_backward_flops(grad_out_shape, query_shape, key_shape, value_shape, *args, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


#: torch's counter knows the CUDA SDPA kernels only; the CPU flash kernel counted the same way
#: (backward with the score recompute: 2.5 x the forward's attention FLOPs).
_CPU_SDPA = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_sdpa_backward_flops,
}


def counted_flops(fn) -> int:
    """FLOPs of ``fn()`` as torch.utils.flop_counter counts them (matmuls, convolutions, SDPA)."""
    counter = FlopCounterMode(display=False, custom_mapping=_CPU_SDPA)
    with counter:
        fn()
    return counter.get_total_flops()


# ----------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="tiny", choices=sorted(DIT_PRESETS), help="DiT preset (DIT_PRESETS)")
    ap.add_argument("--task-preset", default="tiny", choices=sorted(CAMERA_DIT_PRESETS),
                    help="camera-dit task preset giving views, frames, image size and conditions")
    ap.add_argument("--latent-channels", type=int, default=16)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sample-steps", type=int, default=10)
    ap.add_argument("--cfg-scale", type=float, default=4.0)
    ap.add_argument("--no-profile", action="store_true", help="skip the profile when ours is slower")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    ap.add_argument("--clock", default="wall", choices=sorted(CLOCKS), help="wall seconds, or process CPU seconds (shared machines)")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile every timed model (inductor; its compile time is excluded by the warm-up)")
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--skip-sampling", action="store_true", help="training steps, FLOPs and the paper preset only")
    args = ap.parse_args()
    global _clock
    _clock = CLOCKS[args.clock]
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()

    task = CAMERA_DIT_PRESETS[args.task_preset]()
    mcfg = DIT_PRESETS[args.preset](args.latent_channels)
    s = Shape(task, mcfg, args.batch)
    gen = torch.Generator().manual_seed(0)
    cond = random_conditions(s, gen)
    torch.manual_seed(0)
    ours = MultiViewDiT(mcfg).train()
    cogs = {layers: cogvideox_matched(mcfg, s, layers).train() for layers in sorted({mcfg.depth, mcfg.depth + mcfg.control_depth})}
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4)
    opt_cogs = {k: torch.optim.AdamW(m.parameters(), lr=1e-4) for k, m in cogs.items()}
    # the timed modules (compiled: the same weights behind torch.compile; FLOPs are counted eagerly)
    run_ours = torch.compile(ours) if args.compile else ours
    run_cogs = {k: torch.compile(m) if args.compile else m for k, m in cogs.items()}
    precs = tuple(args.precisions)
    tokens = s.video_tokens

    # 1 + 2: training steps; every (model, precision) warmed up, then the repeats interleaved round-robin
    # so that drifts in the machine's load hit all of them alike
    cases = [(f"ours ({mcfg.depth} blocks + {mcfg.control_depth} control, with layout)", "ours", True),
             (f"ours ({mcfg.depth} blocks, no layout input)", "ours", False)]
    cases += [(f"CogVideoX {k} layers", k, None) for k in cogs]

    def step_fn(which, with_layout, bf16):
        if which == "ours":
            return lambda: our_step(run_ours, task, s, cond, opt_ours, bf16, with_layout, gen)
        return lambda: cog_step(run_cogs[which], s, mcfg.conditions.dim, opt_cogs[which], bf16, gen)

    fns = {(name, prec): step_fn(which, with_layout, prec == "bf16") for name, which, with_layout in cases for prec in precs}
    times: dict[tuple[str, str], list[float]] = {key: [] for key in fns}
    for fn in fns.values():
        for _ in range(args.warmup):
            fn()
    for _ in range(args.repeats):
        for key, fn in fns.items():
            times[key] += timed(fn, 0, 1)[1]
    train_rows = []
    for name, which, with_layout in cases:
        row = {"model": name}
        for prec in precs:
            med = statistics.median(times[name, prec])
            row[f"{prec}_s"], row[f"{prec}_times"], row[f"{prec}_tokens_per_s"] = med, times[name, prec], tokens / med
        row["params"] = n_params(ours) if which == "ours" else n_params(cogs[which])
        row["layers"] = mcfg.depth + (mcfg.control_depth if with_layout else 0) if which == "ours" else which
        train_rows.append(row)
        print(f"[{time.perf_counter() - t_start:.0f} s] {name}: " + ", ".join(f"{p} {row[p + '_s']:.3f} s" for p in precs), flush=True)
    by = {r["model"]: r for r in train_rows}
    ours_full, ours_base = train_rows[0], train_rows[1]
    cog_depth = by[f"CogVideoX {mcfg.depth} layers"]
    cog_full = by[f"CogVideoX {mcfg.depth + mcfg.control_depth} layers"]
    ratios = {f"{a}_vs_{b}_{prec}": x[f"{prec}_s"] / y[f"{prec}_s"]
              for a, x, b, y in (("ours_full", ours_full, "cog_depth", cog_depth), ("ours_base", ours_base, "cog_depth", cog_depth),
                                 ("ours_full", ours_full, "cog_depth_plus_control", cog_full))
              for prec in precs}  # fmt: skip

    # FLOPs: analytic rule and torch's counter on one fp32 step of each timed model
    flops = {
        "ours_full_rule": step_flops(mcfg, s, True)["total"],
        "ours_full_counted": counted_flops(lambda: our_step(ours, task, s, cond, opt_ours, False, True, gen)),
        "cog_depth_rule": cog_step_flops(mcfg.heads, mcfg.width // mcfg.heads, mcfg.depth, s, mcfg.conditions.dim)["total"],
        "cog_depth_counted": counted_flops(lambda: cog_step(cogs[mcfg.depth], s, mcfg.conditions.dim, opt_cogs[mcfg.depth], False, gen)),
    }  # fmt: skip

    # profile where our time goes if we are slower
    profile = None
    if not args.no_profile and ratios.get("ours_full_vs_cog_depth_fp32", 0.0) > 1.0:
        from torch.profiler import ProfilerActivity, profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            our_step(ours, task, s, cond, opt_ours, False, True, gen)
        profile = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)

    # 3: sampling
    ours.eval()
    layout = torch.randn(s.latents, generator=torch.Generator().manual_seed(1))
    sample_rows = []
    for method in () if args.skip_sampling else ("euler", "heun"):
        for guided in (False, True):
            row = {"method": method, "cfg": guided, "steps": args.sample_steps,
                   "evaluations": args.sample_steps * (2 if method == "heun" else 1)}
            for prec in precs:
                fn = lambda: sample_clip(ours, s, cond, layout, args.sample_steps, method,  # noqa: E731
                                         args.cfg_scale if guided else None, prec == "bf16")
                row[f"{prec}_s"] = timed(fn, 0, 1)[0] / s.b
            sample_rows.append(row)
            print(f"[{time.perf_counter() - t_start:.0f} s] sample {method} cfg={guided}: "
                  + ", ".join(f"{p} {row[p + '_s']:.2f} s" for p in precs), flush=True)

    # 4: paper preset on the meta device
    paper_task = CAMERA_DIT_PRESETS["paper"]()
    paper_cfg = DIT_PRESETS["paper"](args.latent_channels)
    ps = Shape(paper_task, paper_cfg, 1)
    with torch.device("meta"):
        paper_params = n_params(MultiViewDiT(paper_cfg))
        paper_cog_params = {k: n_params(cogvideox_matched(paper_cfg, ps, k))
                            for k in (paper_cfg.depth, paper_cfg.depth + paper_cfg.control_depth)}
    paper_flops = step_flops(paper_cfg, ps, True)
    paper_cog_flops = cog_step_flops(paper_cfg.heads, paper_cfg.width // paper_cfg.heads, paper_cfg.depth, ps, paper_cfg.conditions.dim)

    out = {
        "machine": f"{cpu_name()}, {os.cpu_count()} logical CPUs", "torch": torch.__version__,
        "diffusers": __import__("diffusers").__version__, "threads": args.threads,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "preset": args.preset, "task_preset": args.task_preset, "batch": s.b,
        "shape": {"views": s.v, "latent_frames": s.t, "channels": s.c, "h": s.h, "w": s.w, "patch": s.p,
                  "tokens_per_view_frame": s.n, "video_tokens": tokens, "context_per_view_frame": s.context},
        "warmup": args.warmup, "repeats": args.repeats, "clock": args.clock, "compiled": args.compile, "train": train_rows, "ratios": ratios,
        "flops_per_step": flops, "sampling": sample_rows, "cfg_scale": args.cfg_scale,
        "paper": {"params": paper_params, "cogvideox_params": paper_cog_params, "video_tokens": ps.video_tokens,
                  "context_per_view_frame": ps.context, "shape": list(ps.latents), "patch": ps.p,
                  "flops_per_step": paper_flops, "cogvideox_depth_flops_per_step": paper_cog_flops},
        "profile_top_ops": profile, "wall_s": time.perf_counter() - t_start,
    }  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.json, out, indent=1)

    print(f"\nmachine: {out['machine']}, torch {out['torch']}, diffusers {out['diffusers']}, {args.threads} thread(s), "
          f"load average {' '.join(f'{x:.1f}' for x in out['load_average'] or ())}; {out['date']}")
    print(f"shape: batch {s.b} x {s.v} views x {s.t} latent frames x {s.c} ch x {s.h} x {s.w} latents, patch {s.p}: "
          f"{tokens} video tokens, {s.context} context tokens per view-frame; median of {args.repeats} after {args.warmup} warm-up\n")
    clock = "CPU s" if args.clock == "cpu" else "s"
    print(f"| training step (fwd + bwd + AdamW){' , compiled' if args.compile else ''} | blocks | weights | "
          + " | ".join(f"{p} {clock}" for p in precs) + " | " + " | ".join(f"{p} tokens/s" for p in precs) + " |")
    print("|---|---|---|" + "---|" * (2 * len(precs)))
    for r in train_rows:
        print(f"| {r['model']} | {r['layers']} | {r['params'] / 1e6:.2f} M | " + " | ".join(f"{r[p + '_s']:.3f}" for p in precs)
              + " | " + " | ".join(f"{r[p + '_tokens_per_s']:.0f}" for p in precs) + " |")
    print()
    print("| ratio (step time) | " + " | ".join(precs) + " |")
    print("|---|" + "---|" * len(precs))
    for key, label in (("ours_full_vs_cog_depth", f"ours with layout / CogVideoX {mcfg.depth} layers"),
                       ("ours_base_vs_cog_depth", f"ours no layout / CogVideoX {mcfg.depth} layers"),
                       ("ours_full_vs_cog_depth_plus_control", f"ours with layout / CogVideoX {mcfg.depth + mcfg.control_depth} layers")):
        print(f"| {label} | " + " | ".join(f"{ratios[key + '_' + p]:.2f}x" for p in precs) + " |")
    print()
    if sample_rows:
        print(f"| sampling one {s.v}-view clip, {args.sample_steps} steps | network calls | " + " | ".join(f"{p} {clock}" for p in precs) + " |")
        print("|---|---|" + "---|" * len(precs))
        for r in sample_rows:
            cfg_txt = f"CFG {args.cfg_scale:g} (batch x2)" if r["cfg"] else "no CFG"
            print(f"| {r['method']}, {cfg_txt} | {r['evaluations']} | " + " | ".join(f"{r[p + '_s']:.2f}" for p in precs) + " |")
        print()
    print("| FLOPs per training step | rule (GFLOP) | torch flop counter (GFLOP) |")
    print("|---|---|---|")
    print(f"| ours with layout | {flops['ours_full_rule'] / 1e9:.2f} | {flops['ours_full_counted'] / 1e9:.2f} |")
    print(f"| CogVideoX {mcfg.depth} layers | {flops['cog_depth_rule'] / 1e9:.2f} | {flops['cog_depth_counted'] / 1e9:.2f} |")
    print()
    cp = ", ".join(f"{k} layers {n / 1e6:.0f} M" for k, n in paper_cog_params.items())
    print(f"paper preset: {paper_params / 1e6:.0f} M weights (matched CogVideoX: {cp}); shape {list(ps.latents)}, patch {ps.p}: "
          f"{ps.video_tokens} video tokens, {ps.context} context tokens per view-frame; model FLOPs per training step "
          f"(batch 1, with layout): {paper_flops['total'] / 1e12:.1f} TFLOP ({paper_flops['dense'] / 1e12:.1f} dense + "
          f"{paper_flops['attention'] / 1e12:.1f} attention); CogVideoX {paper_cfg.depth} layers at the same tokens: "
          f"{paper_cog_flops['total'] / 1e12:.1f} TFLOP. No GPU here: MFU = FLOPs / (step s x peak FLOP/s) to be measured.")
    if profile:
        print("\nours is slower than CogVideoX in fp32; top ops of one fp32 step of ours (self CPU time):\n")
        print(profile)
    print(f"\nwall time {out['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
