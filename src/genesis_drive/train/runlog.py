"""What a run leaves for people to read: metrics.jsonl, TensorBoard events, preview PNGs.

Only rank 0 writes; other ranks hold a disabled log. On resume from step ``s``, rows of
metrics.jsonl after ``s`` (from the interrupted run) are dropped and TensorBoard purges its
events after ``s``, so curves never double back.
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..data.atomic import atomic_write_bytes, atomic_write_text

__all__ = ["RunLog", "encode_png"]


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of a uint8 ``h w c`` RGB (or ``h w`` grey) image."""
    from PIL import Image

    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"preview images must be uint8 (h, w[, 3]), got {image.dtype} {image.shape}")
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


class RunLog:
    """metrics.jsonl + TensorBoard + previews under ``run_dir`` (no-op when ``enabled`` is False)."""

    def __init__(self, run_dir: Path, *, start_step: int, enabled: bool):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.preview_dir = self.run_dir / "previews"
        self._tb = None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._truncate_metrics(start_step)
        from torch.utils.tensorboard import SummaryWriter

        self._tb = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=start_step or None)

    def _truncate_metrics(self, start_step: int) -> None:
        if not self.metrics_path.exists():
            return
        kept = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill
            if isinstance(row, dict) and int(row.get("step", 0)) <= start_step:
                kept.append(line)
        atomic_write_text(self.metrics_path, "".join(k + "\n" for k in kept))

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        """Append one metrics.jsonl row and the same scalars to TensorBoard."""
        if not self.enabled:
            return
        row = {"step": step, "time": round(time.time(), 3)}
        row.update({k: (float(v) if math.isfinite(float(v)) else str(float(v))) for k, v in values.items()})
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        for k, v in values.items():
            self._tb.add_scalar(k, float(v), step)

    def images(self, step: int, images: Mapping[str, np.ndarray]) -> list[Path]:
        """Write ``previews/step_XXXXXXXX_<name>.png`` and the same images to TensorBoard."""
        if not self.enabled:
            return []
        paths = []
        for name, img in images.items():
            path = self.preview_dir / f"step_{step:08d}_{name}.png"
            atomic_write_bytes(path, encode_png(img))
            paths.append(path)
            self._tb.add_image(f"preview/{name}", img, step, dataformats="HWC" if img.ndim == 3 else "HW")
        return paths

    def close(self) -> None:
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
            self._tb = None
