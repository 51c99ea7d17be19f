"""The generic training loop: one function driving any :class:`~genesis_drive.train.task.Task`.

Per optimizer step: ``task.on_step(step)``; set the scheduled LR (times each group's
``lr_scale``); for each of ``grad_accum`` micro-batches run ``task.loss`` under autocast (bf16 or
fp32) and backpropagate ``loss / grad_accum`` (gradient all-reduce only on the last micro-batch);
clip the global gradient norm; AdamW step; then, when the task has a second optimizer
(``aux_param_groups``), the same for ``task.aux_loss`` on the same micro-batches; EMA update.
Every ``log_every`` steps the rank-averaged losses go to metrics.jsonl, TensorBoard and the
progress bar; previews (PNG images, MP4 videos), evaluation and checkpoints follow their own
intervals (and the end). ``task.frozen_modules()`` are moved to the device, frozen and never
checkpointed; the ``version`` of each that has one (a ``LatentCodec``'s weights hash) is recorded
in every checkpoint's ``state.json`` under ``frozen``, so a consumer can check it got the helper the
run was trained with.
"""

from __future__ import annotations

import base64
import contextlib
import math
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..config import config_from_saved, config_to_dict, save_config
from ..data.atomic import atomic_write_json
from ..viz.video import write_mp4
from ..errors import ConfigError, DataError, GenesisError
from . import checkpoint as ckpt
from .config import RESUME_MAY_CHANGE, TrainConfig, lr_at
from .distributed import (
    DistEnv,
    all_reduce_sum,
    barrier,
    broadcast_object,
    full_tensor,
    gather_objects,
    grad_sync,
    wrap_model,
)
from .ema import EMA
from .runlog import RunLog
from .sampling import StepBatchSampler
from .task import Task

__all__ = ["train", "TrainResult", "TrainingDiverged", "move_to_device", "enable_grad_checkpointing"]


class TrainingDiverged(GenesisError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    """Where a finished (or already complete) run stands."""

    step: int
    run_dir: Path
    checkpoint: Path | None
    metrics: dict[str, float] = field(default_factory=dict)   # last logged values
    model: nn.Module | None = None                             # the trained module (unwrapped)
    ema: EMA | None = None


# ----------------------------------------------------------------------------- helpers


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Tensors inside nested dicts/lists/tuples moved to ``device``; everything else unchanged."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(move_to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(v, device) for v in batch)
    return batch


def enable_grad_checkpointing(model: nn.Module) -> int:
    """Switch on every submodule that declares a ``grad_checkpointing`` flag; returns how many."""
    n = 0
    for m in model.modules():
        if isinstance(getattr(m, "grad_checkpointing", None), bool):
            m.grad_checkpointing = True
            n += 1
    if n == 0:
        raise ConfigError(
            f"train.grad_checkpointing=true but {type(model).__name__} has no submodule with a "
            "'grad_checkpointing' flag"
        )
    return n


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode("ascii")


def _unb64(s: str) -> torch.Tensor:
    return torch.from_numpy(np.frombuffer(base64.b64decode(s), dtype=np.uint8).copy())


def _rng_state(device: torch.device) -> dict[str, Any]:
    """This process's RNG states as JSON values."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    out = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": _b64(torch.get_rng_state()),
    }
    if device.type == "cuda":
        out["cuda"] = _b64(torch.cuda.get_rng_state(device))
    return out


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(_unb64(state["torch"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(_unb64(state["cuda"]), device)


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def _config_differences(saved: dict, current: dict, config_type: type) -> list[str]:
    """Dotted keys whose saved and current values differ (keys added since the checkpoint was
    written count as their defaults; a saved config that no longer parses is compared raw)."""
    try:
        saved = config_to_dict(config_from_saved(config_type, saved)[0])
    except ConfigError:
        pass
    a, b = _flat(saved), _flat(current)
    diffs = []
    for key in sorted(set(a) | set(b)):
        if key in RESUME_MAY_CHANGE:
            continue
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            diffs.append(f"{key}: checkpoint {a.get(key, '<absent>')!r}, now {b.get(key, '<absent>')!r}")
    return diffs


def _check_weights(model: nn.Module, weights: dict[str, torch.Tensor], source: Path) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(weights))
    extra = sorted(set(weights) - set(expected))
    shapes = [
        f"'{k}' {tuple(weights[k].shape)} vs model {expected[k]}"
        for k in sorted(set(expected) & set(weights))
        if tuple(weights[k].shape) != expected[k]
    ]
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append(f"missing {missing[:4]}{' ...' if len(missing) > 4 else ''}")
        if extra:
            parts.append(f"unexpected {extra[:4]}{' ...' if len(extra) > 4 else ''}")
        if shapes:
            parts.append(f"shape mismatch {shapes[:3]}{' ...' if len(shapes) > 3 else ''}")
        raise DataError(
            "checkpoint weights do not fit this model (" + "; ".join(parts) + "); was it written by another "
            "task or preset?",
            source / "model.safetensors",
        )


_AUX_PREFIX = "aux_optimizer:"  # key prefix of the second optimizer's tensors in optimizer.safetensors


def _init_from(model: nn.Module, source: Path, task_name: str, env: DistEnv) -> None:
    """Load the weights of checkpoint / run directory ``source`` (EMA when present) into ``model``."""
    path = ckpt.find_checkpoint(source)
    if path is None:
        raise ConfigError(f"--init-from {source}: no checkpoint there (expected a checkpoint directory "
                          "with state.json or a run directory with checkpoints/step_*/)")
    state = ckpt.read_state(path)
    if state.get("task") != task_name:
        raise ConfigError(f"--init-from {path} was written by task {state.get('task')!r}, not {task_name!r}")
    weights = ckpt.load_weights(path, ema=True)
    _check_weights(model, weights, path)
    model.load_state_dict(weights)
    _announce(env, f"initialised from {path} (step {state.get('step')})")


def _task_groups(model: nn.Module, groups: list[dict[str, Any]], tc: TrainConfig, what: str) -> list[dict[str, Any]]:
    """A task's parameter groups checked (only model parameters, no repeats) and completed with defaults."""
    names = {id(p): n for n, p in model.named_parameters()}
    seen: set[int] = set()
    out = []
    for i, g in enumerate(groups):
        unknown = set(g) - {"params", "lr_scale", "weight_decay"}
        if "params" not in g or unknown:
            raise ConfigError(f"task {what}[{i}] must have 'params' and optionally 'lr_scale', 'weight_decay'; "
                              f"got keys {sorted(g)}")
        params = list(g["params"])
        for p in params:
            if id(p) not in names:
                raise ConfigError(f"task {what}[{i}] holds a parameter that is not in the model")
            if id(p) in seen:
                raise ConfigError(f"task {what}: parameter '{names[id(p)]}' is in more than one group")
            seen.add(id(p))
        params = [p for p in params if p.requires_grad]
        if params:
            out.append({"params": params, "lr_scale": float(g.get("lr_scale", 1.0)),
                        "weight_decay": float(g.get("weight_decay", tc.weight_decay))})
    return out


def _build_optimizers(task: Task, model: nn.Module, tc: TrainConfig) -> tuple[torch.optim.Optimizer,
                                                                              torch.optim.Optimizer | None]:
    """The main AdamW (task's ``param_groups`` or decay / no-decay) and the optional second one."""
    aux_raw = task.aux_param_groups(model)
    if aux_raw is not None and type(task).aux_loss is Task.aux_loss:
        raise ConfigError(f"task {type(task).__name__} declares aux_param_groups but does not override aux_loss "
                          "(the loss its second optimizer trains on)")
    aux_groups = _task_groups(model, aux_raw, tc, "aux_param_groups") if aux_raw is not None else []
    aux_ids = {id(p) for g in aux_groups for p in g["params"]}
    raw = task.param_groups(model)
    if raw is None:
        decay, no_decay = [], []
        for _, p in model.named_parameters():
            if p.requires_grad and id(p) not in aux_ids:
                (decay if p.ndim >= 2 else no_decay).append(p)
        groups = [{"params": decay, "lr_scale": 1.0, "weight_decay": tc.weight_decay},
                  {"params": no_decay, "lr_scale": 1.0, "weight_decay": 0.0}]
        groups = [g for g in groups if g["params"]]
    else:
        groups = _task_groups(model, raw, tc, "param_groups")
        grouped = aux_ids | {id(p) for g in groups for p in g["params"]}
        both = [n for n, p in model.named_parameters() if id(p) in aux_ids and id(p) in
                {id(q) for g in groups for q in g["params"]}]
        left = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in grouped]
        if both or left:
            raise ConfigError(f"task param_groups: parameters in both optimizers {both[:4]}, "
                              f"in no group {left[:4]}")
    if not groups:
        raise ConfigError(f"{type(model).__name__} has no trainable parameters")
    optimizer = torch.optim.AdamW(groups, lr=lr_at(tc, 0), betas=tc.betas)
    aux = None
    if aux_raw is not None:
        if not aux_groups:
            raise ConfigError("task aux_param_groups holds no trainable parameter")
        aux = torch.optim.AdamW(aux_groups, lr=lr_at(tc, 0), betas=tc.betas)
    return optimizer, aux


def _prepare_frozen(task: Task, model: nn.Module, device: torch.device) -> dict[str, nn.Module]:
    """The task's frozen helper networks on ``device``, in eval mode, without gradients."""
    frozen = task.frozen_modules()
    trained = {id(p) for p in model.parameters()}
    for name, module in frozen.items():
        if not isinstance(module, nn.Module):
            raise TypeError(f"task.frozen_modules()['{name}'] must be an nn.Module, got {type(module).__name__}")
        if any(id(p) in trained for p in module.parameters()):
            raise ConfigError(f"frozen module '{name}' shares parameters with the trained model; hold it as a "
                              "task attribute outside the model so it is neither trained nor checkpointed")
        module.to(device)
        module.eval()
        module.requires_grad_(False)
    return frozen


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def _write_previews(log: RunLog, step: int, previews: dict[str, np.ndarray], fps: float) -> None:
    """PNG for ``h w c`` / ``h w`` images, MP4 for ``t h w 3`` videos (rank 0's log only)."""
    images = {k: v for k, v in previews.items() if np.asarray(v).ndim != 4}
    log.images(step, images)
    if not log.enabled:
        return
    for name, video in previews.items():
        if np.asarray(video).ndim == 4:
            write_mp4(log.preview_dir / f"step_{step:08d}_{name}.mp4", np.asarray(video), fps=fps, progress=False)


@contextlib.contextmanager
def _inference_mode(model: nn.Module, ema: EMA | None, tc: TrainConfig, device: torch.device) -> Iterator[None]:
    """EMA weights (if any), eval mode, no grad and the run's autocast, for previews and eval."""
    was_training = model.training
    swap = ema.swapped_into(model) if ema is not None else contextlib.nullcontext()
    try:
        with swap, torch.no_grad(), _autocast(tc, device):
            model.eval()
            yield
    finally:
        model.train(was_training)


def _autocast(tc: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=tc.precision == "bf16")


def _announce(env: DistEnv, message: str) -> None:
    if env.is_main:
        tqdm.write(message, file=sys.stderr)


# ----------------------------------------------------------------------------- the loop


def train(
    task: Task,
    cfg: Any,
    run_dir: str | Path,
    *,
    task_name: str,
    resume: bool = False,
    init_from: str | Path | None = None,
    env: DistEnv | None = None,
    run_info: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``task`` with run config ``cfg`` (a dataclass with ``train: TrainConfig``) into ``run_dir``.

    ``resume=True`` continues from the newest complete checkpoint in ``run_dir`` (which must
    exist, and whose config must equal ``cfg`` up to :data:`RESUME_MAY_CHANGE`); without it
    ``run_dir`` must hold no checkpoint yet. ``init_from`` (a checkpoint or run directory of the
    same task) starts a new run from those weights (its EMA weights when it has them; the EMA
    starts there too) with a fresh optimizer and schedule: fine-tuning; it is recorded in
    ``run.json``, and a resumed run ignores it (its own checkpoint holds the weights).
    ``env`` comes from ``init_distributed`` (default: one process on ``cfg.train.device``).
    """
    tc: TrainConfig = cfg.train
    if env is None:
        from .distributed import init_distributed

        env = init_distributed(tc.device)
    run_dir = Path(run_dir)
    micro = tc.micro_batch(env.world_size)
    cfg_dict = config_to_dict(cfg)

    # --- which checkpoint (decided on rank 0, the same everywhere)
    chosen = None
    if env.is_main:
        ckpt.remove_stale_temporaries(run_dir)
        latest = ckpt.latest_checkpoint(run_dir)
        chosen = str(latest) if latest is not None else None
    chosen = broadcast_object(chosen, env)
    if resume and chosen is None:
        raise ConfigError(f"--resume: no complete checkpoint in {ckpt.checkpoint_root(run_dir)} "
                          "(run without --resume to start a new run)")
    if not resume and chosen is not None:
        raise ConfigError(f"{run_dir} already holds checkpoints (newest {Path(chosen).name}); "
                          "pass --resume to continue it or choose another --out")
    saved = None
    if chosen is not None:
        saved = ckpt.read_checkpoint(chosen)
        if saved.state.get("task") != task_name:
            raise ConfigError(f"{chosen} was written by task {saved.state.get('task')!r}, not {task_name!r}")
        diffs = _config_differences(saved.state.get("config", {}), cfg_dict, type(cfg))
        if diffs:
            raise ConfigError(f"config differs from checkpoint {chosen}: " + "; ".join(diffs[:6])
                              + (" ..." if len(diffs) > 6 else ""))

    # --- model, optimizer, EMA (identical initialisation on every rank)
    torch.use_deterministic_algorithms(tc.deterministic, warn_only=True)
    _seed_everything(tc.seed)
    model = task.build_model()
    if saved is None and init_from is not None:
        _init_from(model, Path(init_from), task_name, env)
    if tc.grad_checkpointing:
        enable_grad_checkpointing(model)
    model.to(env.device)
    model.train()
    frozen = _prepare_frozen(task, model, env.device)
    frozen_versions = {n: str(m.version) for n, m in frozen.items() if hasattr(m, "version")}
    wrapped = wrap_model(model, env, tc.parallel, task.fsdp_units(model) if tc.parallel == "fsdp" else ())
    optimizer, aux_optimizer = _build_optimizers(task, model, tc)
    if aux_optimizer is not None and env.distributed:
        raise ConfigError("a task with a second optimizer (aux_param_groups) trains in one process only")
    ema = EMA(model, tc.ema_decay) if tc.ema_decay is not None else None

    start_step = 0
    if saved is not None:
        start_step = _restore(saved, Path(chosen), model, optimizer, ema, env, tc, aux_optimizer)
    else:
        _seed_everything(tc.seed + 1 + env.rank)  # per-rank randomness (noise, dropout) from here on

    if env.is_main:
        save_config(cfg, run_dir / "config.yaml")
        info = {"task": task_name, "world_size": env.world_size, "device": str(env.device),
                "torch": torch.__version__, "resumed_from_step": start_step if saved is not None else None,
                "init_from": str(init_from) if init_from is not None and saved is None else None,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **(run_info or {})}
        atomic_write_json(run_dir / "run.json", info, indent=1)
    if start_step >= tc.steps:
        _announce(env, f"run already at step {start_step} >= train.steps={tc.steps}; nothing to do")
        return TrainResult(start_step, run_dir, Path(chosen) if chosen else None, model=model, ema=ema)

    # --- data
    dataset = task.train_dataset()
    sampler = StepBatchSampler(len(dataset), global_batch=tc.batch_size, grad_accum=tc.grad_accum,
                               world_size=env.world_size, rank=env.rank, seed=tc.seed, start_step=start_step)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=task.collate, num_workers=tc.num_workers,
                        pin_memory=env.device.type == "cuda", persistent_workers=tc.num_workers > 0,
                        generator=torch.Generator().manual_seed(tc.seed * 7919 + env.rank * 104729 + start_step))
    preview_batch = None
    if tc.preview_samples > 0:
        k = min(tc.preview_samples, len(dataset))
        preview_batch = move_to_device(task.collate([dataset[i] for i in range(k)]), env.device)

    log = RunLog(run_dir, start_step=start_step, enabled=env.is_main)
    _announce(env, f"training {task_name}: steps {start_step}->{tc.steps}, global batch {tc.batch_size} "
                   f"({env.world_size} process(es) x {tc.grad_accum} micro-step(s) x {micro}), "
                   f"{tc.precision}, device {env.device}, run dir {run_dir}")
    bar = tqdm(total=tc.steps, initial=start_step, unit="step", desc=task_name, disable=not env.is_main,
               dynamic_ncols=True, file=sys.stderr)

    sums: dict[str, torch.Tensor] = {}     # loss terms summed over the window's micro-steps
    gnorm_sum = torch.zeros((), device=env.device)
    aux_gnorm_sum = torch.zeros((), device=env.device)
    window_steps, window_t0 = 0, time.perf_counter()
    last_metrics: dict[str, float] = {}
    last_ckpt = Path(chosen) if chosen else None
    step = start_step
    batches = iter(loader)
    try:
        while step < tc.steps:
            task.on_step(step)
            lr = lr_at(tc, step)
            gnorm, aux_gnorm = _optimizer_step(task, wrapped, model, optimizer, aux_optimizer, ema, batches,
                                               lr, sums, tc, env)
            step += 1
            window_steps += 1
            gnorm_sum += gnorm
            aux_gnorm_sum += aux_gnorm
            bar.update(1)

            if step % tc.log_every == 0 or step == tc.steps:
                last_metrics = _reduce(sums, window_steps * tc.grad_accum, env)
                last_metrics["grad_norm"] = gnorm_sum.item() / window_steps  # identical on every rank
                if aux_optimizer is not None:
                    last_metrics["aux/grad_norm"] = aux_gnorm_sum.item() / window_steps
                if not math.isfinite(last_metrics["loss"]):
                    raise TrainingDiverged(
                        f"loss is {last_metrics['loss']} at step {step}; last checkpoint: {last_ckpt or 'none'}")
                dt = time.perf_counter() - window_t0
                last_metrics.update(lr=lr, steps_per_s=window_steps / dt,
                                    samples_per_s=window_steps * tc.batch_size / dt)
                log.scalars(step, last_metrics)
                bar.set_postfix(loss=f"{last_metrics['loss']:.4g}", lr=f"{lr:.3g}")
                sums, window_steps, window_t0 = {}, 0, time.perf_counter()
                gnorm_sum.zero_()
                aux_gnorm_sum.zero_()

            at_end = step == tc.steps
            if tc.eval_every and (step % tc.eval_every == 0 or at_end):
                with _inference_mode(model, ema, tc, env.device):
                    results = task.evaluate(model, env)
                if results:
                    log.scalars(step, {f"eval/{k}": v for k, v in results.items()})
                    last_metrics.update({f"eval/{k}": float(v) for k, v in results.items()})
            if preview_batch is not None and ((tc.preview_every and step % tc.preview_every == 0) or at_end):
                with _inference_mode(model, ema, tc, env.device):
                    previews = task.preview(model, preview_batch)
                _write_previews(log, step, previews, task.preview_fps)
            if step % tc.ckpt_every == 0 or at_end:
                last_ckpt = _save(run_dir, step, model, optimizer, ema, env, tc, task_name, cfg_dict,
                                  micro, aux_optimizer, frozen_versions) or last_ckpt
    finally:
        bar.close()
        log.close()
        del batches
    return TrainResult(step, run_dir, last_ckpt, last_metrics, model=model, ema=ema)


def _optimizer_params(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for g in optimizer.param_groups for p in g["params"]]


def _accumulate(loss_fn, wrapped: nn.Module, batches: Iterator, sums: dict[str, torch.Tensor], prefix: str,
                tc: TrainConfig, env: DistEnv, kept: list[Any] | None = None) -> None:
    """Backpropagate ``loss / grad_accum`` of each of ``grad_accum`` micro-batches (moved to the
    device one at a time, appended to ``kept`` when given); add its terms into ``sums``."""
    for m in range(tc.grad_accum):
        batch = move_to_device(next(batches), env.device)
        if kept is not None:
            kept.append(batch)
        with grad_sync(wrapped, m == tc.grad_accum - 1):  # all-reduce on the last micro-step only
            with _autocast(tc, env.device):
                losses = loss_fn(wrapped, batch)
            _check_losses(losses)
            (losses["loss"] / tc.grad_accum).backward()
        for k, v in losses.items():
            k = prefix + k
            v = v.detach().float().reshape(())
            sums[k] = sums[k] + v if k in sums else v.clone()


def _clip_and_step(model: nn.Module, optimizer: torch.optim.Optimizer, tc: TrainConfig) -> torch.Tensor:
    """Clip this optimizer's gradient norm, step, and drop every gradient of the model."""
    max_norm = tc.grad_clip if tc.grad_clip is not None else float("inf")
    gnorm = full_tensor(torch.nn.utils.clip_grad_norm_(_optimizer_params(optimizer), max_norm)).detach().float()
    optimizer.step()
    model.zero_grad(set_to_none=True)
    return gnorm


def _optimizer_step(task: Task, wrapped: nn.Module, model: nn.Module, optimizer: torch.optim.Optimizer,
                    aux_optimizer: torch.optim.Optimizer | None, ema: EMA | None, batches: Iterator, lr: float,
                    sums: dict[str, torch.Tensor], tc: TrainConfig, env: DistEnv) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step over ``grad_accum`` micro-batches (then the aux optimizer's on the same
    micro-batches); adds the loss terms into ``sums`` and returns both gradient norms before
    clipping (the second 0 without an aux optimizer)."""
    _set_lr(optimizer, lr)
    kept: list[Any] | None = [] if aux_optimizer is not None else None
    _accumulate(task.loss, wrapped, batches, sums, "", tc, env, kept)
    gnorm = _clip_and_step(model, optimizer, tc)
    aux_gnorm = torch.zeros((), device=gnorm.device)
    if aux_optimizer is not None:
        _set_lr(aux_optimizer, lr)
        _accumulate(task.aux_loss, wrapped, iter(kept), sums, "aux/", tc, env)
        aux_gnorm = _clip_and_step(model, aux_optimizer, tc)
    if ema is not None:
        ema.update(model)
    return gnorm, aux_gnorm


def _check_losses(losses: Any) -> None:
    if not isinstance(losses, dict) or "loss" not in losses:
        raise TypeError(f"task.loss must return a dict with a 'loss' entry, got {type(losses).__name__}")
    for k, v in losses.items():
        if not isinstance(v, torch.Tensor) or v.numel() != 1:
            raise TypeError(f"task.loss entry '{k}' must be a scalar tensor, got {v!r:.80}")


def _reduce(sums: dict[str, torch.Tensor], count: int, env: DistEnv) -> dict[str, float]:
    """Means over the logging window and over ranks."""
    keys = sorted(sums)
    stacked = all_reduce_sum(torch.stack([sums[k] for k in keys]), env)
    values = (stacked / (count * env.world_size)).tolist()
    return dict(zip(keys, values, strict=True))


def _save(run_dir: Path, step: int, model: nn.Module, optimizer: torch.optim.Optimizer, ema: EMA | None,
          env: DistEnv, tc: TrainConfig, task_name: str, cfg_dict: dict, micro: int,
          aux_optimizer: torch.optim.Optimizer | None = None, frozen: dict[str, str] | None = None) -> Path | None:
    """Gather full tensors (collective), then rank 0 writes the checkpoint directory atomically.

    A second optimizer's tensors go into optimizer.safetensors under the ``aux_optimizer:`` key
    prefix, its hyperparameters into state.json's ``aux_optimizer``."""
    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_sd = get_model_state_dict(model, options=opts)
    optim_sd = get_optimizer_state_dict(model, optimizer, options=opts)
    aux_sd = get_optimizer_state_dict(model, aux_optimizer, options=opts) if aux_optimizer is not None else None
    ema_sd = ema.state_dict() if ema is not None else None
    rngs = gather_objects(_rng_state(env.device), env)
    path = None
    if env.is_main:
        optim_tensors, optim_meta = ckpt.flatten_optimizer_state(optim_sd)
        state = {"task": task_name, "config": cfg_dict, "world_size": env.world_size, "micro_batch": micro,
                 "rng": rngs, "optimizer": optim_meta, "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        if frozen:
            state["frozen"] = dict(frozen)
        if aux_sd is not None:
            aux_tensors, state["aux_optimizer"] = ckpt.flatten_optimizer_state(aux_sd)
            optim_tensors.update({_AUX_PREFIX + k: v for k, v in aux_tensors.items()})
        path = ckpt.save_checkpoint(run_dir, step, model=model_sd, optimizer=optim_tensors, ema=ema_sd,
                                    state=state, keep_last=tc.keep_last)
    barrier(env)
    return path


def _load_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                    meta: dict, source: Path, what: str) -> None:
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    osd = ckpt.unflatten_optimizer_state(tensors, meta)
    unknown = sorted(set(osd["state"]) - names)
    if unknown or len(osd["param_groups"]) != len(optimizer.param_groups):
        raise DataError(f"{what} state does not fit this model (unknown parameters {unknown[:4]}, "
                        f"{len(osd['param_groups'])} groups vs {len(optimizer.param_groups)})",
                        source / "optimizer.safetensors")
    # strict=False: parameters that never received a gradient (a branch the data never uses, e.g. a
    # caption encoder without captions) have no state in the checkpoint and none in a fresh optimizer
    # either; every saved entry is checked above to belong to this model.
    set_optimizer_state_dict(model, optimizer, osd, options=StateDictOptions(full_state_dict=True, strict=False))


def _restore(data: ckpt.CheckpointData, source: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
             ema: EMA | None, env: DistEnv, tc: TrainConfig, aux_optimizer: torch.optim.Optimizer | None = None) -> int:
    """Load weights, optimizer state(s), EMA and RNG from a checkpoint; returns its step."""
    _check_weights(model, data.model, source)
    set_model_state_dict(model, data.model, options=StateDictOptions(full_state_dict=True))
    main = {k: v for k, v in data.optimizer.items() if not k.startswith(_AUX_PREFIX)}
    aux = {k[len(_AUX_PREFIX):]: v for k, v in data.optimizer.items() if k.startswith(_AUX_PREFIX)}
    _load_optimizer(model, optimizer, main, data.state.get("optimizer", {}), source, "optimizer")
    has_aux = "aux_optimizer" in data.state
    if (aux_optimizer is not None) != has_aux:
        raise DataError("checkpoint " + ("has" if has_aux else "lacks") + " a second optimizer's state but this "
                        "task " + ("has none" if has_aux else "has one (aux_param_groups)"), source / "state.json")
    if aux_optimizer is not None:
        _load_optimizer(model, aux_optimizer, aux, data.state["aux_optimizer"], source, "second optimizer")
    if ema is not None:
        if data.ema is None:
            raise DataError("checkpoint has no EMA weights but train.ema_decay is set", source)
        ema.load_state_dict(data.ema, source=str(source / "ema.safetensors"))
    rngs = data.state.get("rng", [])
    if len(rngs) == env.world_size:
        _set_rng_state(rngs[env.rank], env.device)
    else:
        _announce(env, f"note: checkpoint was written by {len(rngs)} process(es), this run has "
                       f"{env.world_size}; random streams restart from seed {tc.seed} and step {data.step}")
        _seed_everything(tc.seed + 1 + env.rank + 1_000_003 * data.step)
    _announce(env, f"resumed from {source} (step {data.step})")
    return data.step
