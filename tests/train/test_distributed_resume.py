"""Multi-process and kill/resume behaviour, through real subprocesses (torchrun with gloo on CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from genesis_drive.train import checkpoint as ckpt
from genesis_drive.train import load_weights
from genesis_drive.train.loop import train
from genesis_drive.train.tasks.frame_ae import build

from .conftest import DRIVERS, FAST, fast_config, max_abs_diff

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _run(cmd: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env(), cwd=DRIVERS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _single(jpeg_root, run_dir, overrides):
    cfg = fast_config(*overrides)
    return train(build(cfg, jpeg_root), cfg, run_dir, task_name="frame_ae")


def test_two_process_ddp_and_fsdp_equal_single_process_with_same_global_batch(jpeg_root, tmp_path):
    """2 ranks x 2 accumulation micro-steps x 2 samples == 1 process x 8 samples, step by step,
    for DDP and for FSDP (both runs in one torchrun launch, gloo on CPU)."""
    steps = ["train.steps=4", "train.batch_size=8", "train.lr=3e-3"]
    cmd = [*TORCHRUN, "driver_cli.py", "--dump-ranks"]
    for parallel in ("ddp", "fsdp"):
        cmd += ["train", "frame_ae", "--data", str(jpeg_root), "--out", str(tmp_path / parallel),
                "--set", *FAST, *steps, "train.grad_accum=2", f"train.parallel={parallel}", "--then"]
    _run(cmd[:-1])
    single = _single(jpeg_root, tmp_path / "single", steps)
    single_w = {k: v.detach() for k, v in single.model.state_dict().items()}
    torch.manual_seed(0)
    init = build(fast_config(), jpeg_root).build_model().state_dict()
    assert max_abs_diff(single_w, init) > 1e-3  # the runs really trained

    for parallel in ("ddp", "fsdp"):
        run = tmp_path / parallel
        # per-step gradient norms (before clipping): the ranks' gradients average to the full batch's
        grads = [[json.loads(r)["grad_norm"] for r in (d / "metrics.jsonl").read_text().splitlines()]
                 for d in (run, tmp_path / "single")]
        assert len(grads[0]) == 4 and grads[0] == pytest.approx(grads[1], rel=1e-5), parallel
        multi_w = load_weights(run, ema=False)
        assert max_abs_diff(multi_w, single_w) < 1e-4, parallel
        r0 = load_file(str(run / "rank0.safetensors"))
        r1 = load_file(str(run / "rank1.safetensors"))
        assert all(torch.equal(r0[k], r1[k]) for k in r0), parallel  # ranks agree bit for bit
        assert max_abs_diff(r0, multi_w) == 0.0
        assert max_abs_diff(load_weights(run, ema=True), load_weights(tmp_path / "single", ema=True)) < 1e-4


def test_sigkill_mid_checkpoint_then_resume_equals_straight_run(jpeg_root, tmp_path):
    """N=8 straight steps == checkpoint at N/2 + SIGKILL (while writing the step-N checkpoint) +
    resume from N/2 + N/2 more steps. The killed write leaves no checkpoint under a final name."""
    overrides = ["train.steps=8", "train.ckpt_every=4", "train.lr=3e-3"]
    straight = _single(jpeg_root, tmp_path / "straight", overrides)

    run = tmp_path / "killed"
    marker = tmp_path / "frozen"
    proc = subprocess.Popen(
        [sys.executable, "driver_kill.py", str(marker), "8", "train", "frame_ae", "--data", str(jpeg_root),
         "--out", str(run), "--set", *FAST, *overrides],
        cwd=DRIVERS, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "the run never reached the step-8 checkpoint"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    # the half-written step-8 checkpoint exists only as a temporary; step 4 is the latest complete one
    assert [s for s, _ in ckpt.list_checkpoints(run)] == [4]
    assert any(p.name.startswith(".tmp-step_00000008") for p in (run / "checkpoints").iterdir())

    cfg = fast_config(*overrides)
    resumed = train(build(cfg, jpeg_root), cfg, run, task_name="frame_ae", resume=True)
    assert resumed.step == 8
    assert not any(p.name.startswith(".tmp-") for p in (run / "checkpoints").iterdir())
    assert max_abs_diff(weights := {k: v.detach() for k, v in resumed.model.state_dict().items()},
                        {k: v.detach() for k, v in straight.model.state_dict().items()}) < 1e-5
    assert max_abs_diff(resumed.ema.state_dict(), straight.ema.state_dict()) < 1e-5
    assert max_abs_diff(load_weights(run, ema=False), weights) == 0.0
    # metrics.jsonl has each step once, in order (rows of the killed run after step 4 were dropped)
    steps = [int(line.split('"step": ')[1].split(",")[0]) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))
