"""The device benchmark (benchmarks/bench_dit_device.py): a tiny step runs on the CPU and reports
the model FLOPs of ``step_flops``, the achieved rate and MFU consistently with its step time; the
datasheet peak is found by GPU name (PCIe before SXM), only for bf16 on CUDA; bad counts are refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_dit_device  # noqa: E402
from bench_camera_dit import Shape, step_flops  # noqa: E402

from genesis_drive.models.camera.dit import DIT_PRESETS  # noqa: E402
from genesis_drive.train.tasks.camera_dit import CAMERA_DIT_PRESETS  # noqa: E402


def test_a_tiny_step_reports_consistent_flops_rate_and_mfu(tmp_path):
    out = tmp_path / "dit.json"
    res = bench_dit_device.main(["--preset", "tiny", "--task-preset", "tiny", "--device", "cpu", "--precision", "fp32",
                                 "--warmup", "0", "--repeats", "2", "--peak-tflops", "0.5", "--json", str(out)])
    assert json.loads(out.read_text())["step_s"] == res["step_s"] > 0
    s = Shape(CAMERA_DIT_PRESETS["tiny"](), DIT_PRESETS["tiny"](16), 1)
    assert res["video_tokens"] == s.video_tokens == 6 * 3 * 9 * 16
    assert res["model_tflop_per_step"] == pytest.approx(step_flops(DIT_PRESETS["tiny"](16), s, True)["total"] / 1e12)
    assert res["achieved_tflops"] == pytest.approx(res["model_tflop_per_step"] / res["step_s"])
    assert res["mfu"] == pytest.approx(res["achieved_tflops"] / 0.5)
    assert res["tokens_per_s"] == pytest.approx(s.video_tokens / res["step_s"])
    assert len(res["step_times_s"]) == 2 and res["peak_memory_gib"] is None
    # without the layout input the step has fewer FLOPs (no control branch)
    base = bench_dit_device.main(["--preset", "tiny", "--task-preset", "tiny", "--device", "cpu", "--precision", "fp32",
                                  "--warmup", "0", "--repeats", "1", "--no-layout"])
    assert base["model_tflop_per_step"] < res["model_tflop_per_step"] and base["mfu"] is None


def test_the_peak_is_the_datasheet_figure_of_a_known_gpu(monkeypatch):
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    for name, want in (("NVIDIA H100 80GB HBM3", 989.4), ("NVIDIA H100 PCIe", 756.0), ("NVIDIA H200", 989.4),
                       ("NVIDIA A100-SXM4-80GB", 312.0), ("Some Other GPU", None)):
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None, n=name: n)
        assert bench_dit_device.peak_tflops(cuda, "bf16", None) == want
        assert bench_dit_device.peak_tflops(cuda, "fp32", None) is None  # no fp32 datasheet figure is assumed
    assert bench_dit_device.peak_tflops(cpu, "bf16", None) is None
    assert bench_dit_device.peak_tflops(cpu, "bf16", 3.0) == 3.0


@pytest.mark.parametrize("flag,value", [("--repeats", "0"), ("--batch", "0"), ("--warmup", "-1")])
def test_bad_counts_are_refused(flag, value, capsys):
    with pytest.raises(SystemExit):
        bench_dit_device.main(["--preset", "tiny", "--task-preset", "tiny", "--device", "cpu", flag, value])
    assert flag in capsys.readouterr().err
