"""DataCrafter: clip curation (quality scores, filter), hierarchical captions, caption embeddings.

Modules: :mod:`.image_quality` / :mod:`.occlusion` / :mod:`.integrity` / :mod:`.measures` (raw
measurements), :mod:`.scoring` (sub-scores, S, keep), :mod:`.captioner` / :mod:`.road` /
:mod:`.colour` / :mod:`.caption_schema` / :mod:`.vlm` (captions), :mod:`.encoder` (embeddings),
:mod:`.manifest` (Parquet manifest), :mod:`.worker` / :mod:`.runners` / :mod:`.pipeline` (the run),
:mod:`.report`, :mod:`.cli` (``genesis-drive curate``). See docs/curation.md.
"""
