"""DataCrafter driver: plan clips, process shards (resumably), merge, embed captions, write the manifest.

Files, for ``--out DIR/NAME.parquet``:

* ``DIR/NAME.parquet.parts/``: the run's progress. ``run.json`` (what the run is: root, config,
  plan digest) and one ``part-NNNNNN.parquet`` per shard of up to ``batch_size`` planned clips of
  one scene (:func:`make_parts`), each written atomically. A rerun with the same inputs skips finished shards, so a killed run loses at
  most the shards in flight and never duplicates rows. Removed after a successful merge.
* ``DIR/NAME.parquet``: the manifest (:mod:`.manifest`), written atomically after all shards.
* ``DIR/NAME.emb-<encoder id>.safetensors``: caption embeddings (:mod:`.encoder`), a cache keyed
  by text hash, reused across runs.
* ``DIR/NAME.report/``: histograms, example pictures and ``report.md`` (:mod:`.report`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ..data.nuscenes import NuScenesReader
from ..errors import ConfigError, DataError
from .manifest import MANIFEST_VERSION, read_table, rows_to_table, write_table
from .runners import Part, run_local, run_ray
from .worker import CurationConfig, PlannedClip, caption_segments, plan_clips

__all__ = ["CurationResult", "RunOptions", "curate", "make_parts", "parts_dir_for", "report_dir_for", "store_path_for"]


@dataclass(frozen=True)
class RunOptions:
    """How to run (does not change the rows): workers (processes / Ray actors), Ray use and
    address, limit (first N planned clips only), overwrite an existing manifest, write the report."""

    workers: int = 2
    ray: bool = False
    ray_address: str | None = None
    limit: int | None = None
    overwrite: bool = False
    report: bool = True
    progress: bool = True


@dataclass
class CurationResult:
    manifest: Path
    clips: int
    kept: int
    errors: int
    resumed_parts: int
    embedding_store: Path | None
    report: Path | None


def parts_dir_for(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def store_path_for(out: Path, encoder_id: str) -> Path:
    return out.with_name(f"{out.stem}.emb-{encoder_id}.safetensors")


def report_dir_for(out: Path) -> Path:
    return out.with_name(out.stem + ".report")


def _run_description(root: Path, version: str, cfg: CurationConfig, plan: list[PlannedClip]) -> dict:
    digest = hashlib.sha256("\n".join(f"{p.clip_id}|{'/'.join(p.frame_tokens)}|{'/'.join(p.views)}" for p in plan).encode()).hexdigest()
    return {"schema": MANIFEST_VERSION, "root": str(root.resolve()), "version": version, "config": cfg.to_dict(), "plan_sha256": digest, "clips": len(plan)}


def _check_resume(parts_dir: Path, desc: dict) -> None:
    path = parts_dir / "run.json"
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise DataError("unreadable run description; delete the .parts folder to start over", path) from None
    if old != desc:
        diff = sorted(k for k in set(old) | set(desc) if old.get(k) != desc.get(k))
        if "config" in diff:
            diff += [f"config.{k}" for k in sorted(desc["config"]) if old.get("config", {}).get(k) != desc["config"][k]]
        raise ConfigError(f"{parts_dir} holds an unfinished run with different inputs ({', '.join(diff)}); rerun with the same options or pass --overwrite")


def _finished_parts(parts_dir: Path, parts: list[Part]) -> set[int]:
    """Indices of parts already on disk with exactly their planned clip ids (corrupt ones are removed)."""
    done = set()
    for tmp in parts_dir.glob(".part-*.tmp"):
        tmp.unlink(missing_ok=True)
    for i, plan in parts:
        path = parts_dir / f"part-{i:06d}.parquet"
        if not path.is_file():
            continue
        try:
            ids = read_table(path).column("clip_id").to_pylist()
        except DataError:
            ids = None
        if ids == [p.clip_id for p in plan]:
            done.add(i)
        else:
            path.unlink()
    return done


def make_parts(plan: list[PlannedClip], batch_size: int) -> list[Part]:
    """Shards of at most ``batch_size`` consecutive planned clips, never spanning two scenes (a
    worker measures a scene's lens occlusion once for all the clips of a shard)."""
    chunks: list[list[PlannedClip]] = []
    for p in plan:
        if chunks and chunks[-1][-1].scene_token == p.scene_token and len(chunks[-1]) < batch_size:
            chunks[-1].append(p)
        else:
            chunks.append([p])
    return list(enumerate(chunks))


def curate(root: str | Path, out: str | Path, cfg: CurationConfig = CurationConfig(), run: RunOptions = RunOptions()) -> CurationResult:
    """Curate every clip of the nuScenes-format ``root`` into the manifest ``out`` (see module doc)."""
    root, out = Path(root), Path(out)
    parts_dir = parts_dir_for(out)
    if out.exists() and not parts_dir.exists() and not run.overwrite:
        raise DataError("manifest already exists; pass --overwrite to recompute it", out)
    if run.overwrite:
        shutil.rmtree(parts_dir, ignore_errors=True)
    reader = NuScenesReader(root, cfg.version)
    plan = plan_clips(reader, cfg.clip_spec, run.limit)
    if not plan:
        raise DataError("no scenes to curate", root)
    desc = _run_description(root, reader.version, cfg, plan)
    parts_dir.mkdir(parents=True, exist_ok=True)
    _check_resume(parts_dir, desc)
    from ..data.atomic import atomic_write_json

    atomic_write_json(parts_dir / "run.json", desc, indent=1)
    parts = make_parts(plan, cfg.batch_size)
    done = _finished_parts(parts_dir, parts)
    todo = [p for p in parts if p[0] not in done]
    bar = tqdm(total=len(plan), initial=sum(len(pl) for i, pl in parts if i in done), unit="clip", desc="curate", disable=not run.progress)

    def on_part(i: int, rows: list[dict]) -> None:
        write_table(rows_to_table(rows), parts_dir / f"part-{i:06d}.parquet")
        bar.update(len(rows))

    try:
        if run.ray:
            run_ray(str(root), cfg, todo, on_part, run.workers, run.ray_address)
        else:
            run_local(str(root), cfg, todo, on_part, run.workers)
    finally:
        bar.close()
    return _merge(root, out, cfg, run, plan, parts, parts_dir, desc, resumed=len(done))


def _merge(root: Path, out: Path, cfg: CurationConfig, run: RunOptions, plan, parts, parts_dir: Path, desc: dict, resumed: int) -> CurationResult:
    rows: list[dict] = []
    for i, part_plan in parts:
        path = parts_dir / f"part-{i:06d}.parquet"
        if not path.is_file():
            raise DataError("shard missing after processing; rerun to resume", path)
        part_rows = read_table(path).to_pylist()
        if [r["clip_id"] for r in part_rows] != [p.clip_id for p in part_plan]:
            raise DataError("shard does not hold its planned clips; rerun to recompute it", path)
        rows.extend(part_rows)
    ids = [r["clip_id"] for r in rows]
    if len(set(ids)) != len(ids) or len(rows) != len(plan):
        raise DataError(f"merged {len(rows)} rows for {len(plan)} planned clips (duplicates: {len(ids) - len(set(ids))})", parts_dir)
    store_path = None
    if cfg.embed:
        from .encoder import EmbeddingStore, SentenceEncoder, encode_cached

        encoder = SentenceEncoder(cfg.encoder_path)
        store_path = store_path_for(out, encoder.id)
        store = EmbeddingStore(store_path, encoder.id)
        texts = []
        for r in rows:
            if r["caption_json"]:
                texts.extend(caption_segments(json.loads(r["caption_json"]))[1])
        encode_cached(encoder, store, texts)
        store.save()
        for r in rows:
            if r["embedding_keys"]:
                r["embedding_store"] = store_path.name
    kept = sum(1 for r in rows if r["kept"])
    errors = sum(1 for r in rows if r["status"] != "ok")
    meta = {**desc, "kept": kept, "errors": errors}
    write_table(rows_to_table(rows), out, meta)
    report = None
    if run.report:
        from .report import write_report

        report = write_report(out, report_dir_for(out), root=root, cfg=cfg)
    shutil.rmtree(parts_dir, ignore_errors=True)
    return CurationResult(out, len(rows), kept, errors, resumed, store_path, report)
