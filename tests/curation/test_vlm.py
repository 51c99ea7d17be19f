"""The VLM caption backend: a tiny randomly initialised LLaVA built here stands in for a real model
(no weights can be downloaded), which exercises loading from a local folder, prompting and decoding."""

from __future__ import annotations

from pathlib import Path

import pytest

from genesis_drive.curation.caption_schema import validate_caption
from genesis_drive.curation.captioner import OfflineCaptioner
from genesis_drive.curation.vlm import VLMCaptioner, check_model_dir
from genesis_drive.data.schema import Box3D
from genesis_drive.errors import ConfigError

from .clips import make_clip


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    words = ["<unk>", "<pad>", "<s>", "</s>", "<image>"] + ["a", "car", "the", "road", "is", "on", "left", "right", "white", "red", "blue", "in", "front", "of", "this", "camera"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    ptok = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    ptok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    ip = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    proc = LlavaProcessor(image_processor=ip, tokenizer=ptok, patch_size=16, vision_feature_select_strategy="default",
                          image_token="<image>", num_additional_image_tokens=1)
    vision = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=16)
    text = LlamaConfig(vocab_size=len(words), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2)
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(LlavaConfig(vision_config=vision, text_config=text, image_token_index=4, vision_feature_select_strategy="default"))
    path = tmp_path_factory.mktemp("vlm") / "tiny-llava"
    model.save_pretrained(path)
    proc.save_pretrained(path)
    return path


def test_missing_or_bad_model_folder_fails_clearly(tmp_path):
    with pytest.raises(ConfigError, match="needs --vlm-path"):
        check_model_dir(None)
    with pytest.raises(ConfigError, match="not found"):
        VLMCaptioner(tmp_path / "absent", OfflineCaptioner())
    with pytest.raises(ConfigError, match="no config.json"):
        VLMCaptioner(tmp_path, OfflineCaptioner())


def test_vlm_adds_descriptions_on_top_of_the_structured_caption(tiny_vlm):
    car = Box3D.from_yaw([10, 0, 0.8], [1.9, 4.5, 1.6], 0.0, "vehicle.car", instance_token="car", velocity=[5, 0, 0])
    clip = make_clip(t=2, w=64, h=36, seed=21, boxes=[car], paint={"car": (245, 245, 245)})
    vlm = VLMCaptioner(tiny_vlm, OfflineCaptioner(), max_new_tokens=4)
    cap = vlm.caption(clip)
    validate_caption(cap)
    offline = OfflineCaptioner().caption(clip)
    assert cap["backend"] == "vlm:tiny-llava"
    for ch in clip.views:
        d = cap["cameras"][ch]["vlm_description"]
        assert isinstance(d, str) and d
        assert cap["cameras"][ch]["text"] == f"[{ch}] {d}"
        assert cap["cameras"][ch]["instances"] == offline["cameras"][ch]["instances"]
    assert cap["global"]["text"].startswith(offline["global"]["text"])
    assert cap["global"]["text"].endswith(cap["global"]["vlm_description"])
    assert vlm.caption(clip) == cap  # greedy decoding: deterministic
