"""Vision-language-model captioner: a local transformers image-text-to-text model describes each view.

The structured fields (instances, road, traffic, ego) still come from the annotations through
:class:`~.captioner.OfflineCaptioner`; the VLM adds a free-text ``vlm_description`` per camera
(frame 0 of that view) and one for the scene (frame 0 of the first view), and the text rendering
uses them. The model is read from a local folder only (``local_files_only``); a missing or
incomplete folder is a :class:`~genesis_drive.errors.ConfigError` at construction.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.schema import Clip
from ..errors import ConfigError
from .caption_schema import camera_text, global_sentence, render_text
from .captioner import CaptionContext, OfflineCaptioner

__all__ = ["CAMERA_PROMPT", "SCENE_PROMPT", "VLMCaptioner", "check_model_dir"]

CAMERA_PROMPT = (
    "This is the {channel} camera of a car. In one or two sentences, describe the road users you see "
    "(type, colour, position in the image, what they are doing)."
)
SCENE_PROMPT = "Describe the time of day, the weather and the road in one sentence."


def check_model_dir(model_path: str | Path | None) -> Path:
    """The VLM folder as a Path; ConfigError when absent or lacking ``config.json``."""
    if model_path is None:
        raise ConfigError("the VLM captioner needs --vlm-path: a local transformers vision-language model folder")
    path = Path(model_path)
    if not path.is_dir():
        raise ConfigError(f"VLM model folder {path} not found (expected a local transformers model folder with config.json)")
    if not (path / "config.json").is_file():
        raise ConfigError(f"{path} has no config.json: not a transformers model folder")
    return path


class VLMCaptioner:
    """Captions with a local transformers VLM on top of the offline structured caption.

    model_path: folder with ``config.json``, weights and processor files of a model that
    ``AutoModelForImageTextToText`` and ``AutoProcessor`` can load.
    """

    def __init__(
        self,
        model_path: str | Path | None,
        base: OfflineCaptioner,
        max_new_tokens: int = 80,
        device: str = "cpu",
    ):
        path = check_model_dir(model_path)
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        try:
            self.processor = AutoProcessor.from_pretrained(str(path), local_files_only=True)
            self.model = AutoModelForImageTextToText.from_pretrained(str(path), local_files_only=True).to(device).eval()
        except (OSError, ValueError, KeyError) as e:
            raise ConfigError(f"cannot load a vision-language model from {path}: {e}") from None
        self._torch = torch
        self.base = base
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.name = f"vlm:{path.name}"

    def describe(self, image: np.ndarray, prompt: str) -> str:
        """The model's answer to ``prompt`` about an RGB uint8 image ``(h w 3)`` (greedy decoding)."""
        from PIL import Image

        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        if getattr(self.processor, "chat_template", None):
            text = self.processor.apply_chat_template(messages, add_generation_prompt=True)
        else:  # no chat template: the image placeholder goes first, as in LLaVA-style prompts
            text = f"{getattr(self.processor, 'image_token', None) or '<image>'}\n{prompt}"
        inputs = self.processor(images=[Image.fromarray(image)], text=[text], return_tensors="pt").to(self.device)
        with self._torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new = out[:, inputs["input_ids"].shape[1] :]
        return self.processor.batch_decode(new, skip_special_tokens=True)[0].strip()

    def caption(self, clip: Clip, context: CaptionContext = CaptionContext()) -> dict:
        cap = self.base.caption(clip, context)
        cap["backend"] = self.name
        g = cap["global"]
        g["vlm_description"] = self.describe(clip.images[0, 0], SCENE_PROMPT)
        g["text"] = global_sentence(g) + " " + g["vlm_description"]
        for vi, ch in enumerate(clip.views):
            cam = cap["cameras"][ch]
            cam["vlm_description"] = self.describe(clip.images[0, vi], CAMERA_PROMPT.format(channel=ch))
            cam["text"] = camera_text(ch, cam)
        cap["text"] = render_text(cap)
        return cap
