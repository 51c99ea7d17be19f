"""The Rerun recording of a scene, read back with rerun's own reader (rerun.dataframe, `rerun rrd verify`)."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from genesis_drive.data.nuscenes import NuScenesReader
from genesis_drive.data.schema import CAMERA_CHANNELS
from genesis_drive.export.rerun_rec import SEQUENCE, TIMELINE, write_rrd


@pytest.fixture(scope="module")
def recording(hm_root, tmp_path_factory):
    reader = NuScenesReader(hm_root)
    scene = reader.scene_tokens()[0]
    path = write_rrd(reader, scene, tmp_path_factory.mktemp("rrd") / "scene.rrd")
    import rerun.dataframe as rdf

    return reader, scene, path, rdf.load_recording(str(path))


def _column(rec, entity: str, column: str, index: str = SEQUENCE) -> list:
    table = rec.view(index=index, contents=entity).select().read_all()
    return table.column(f"{entity}:{column}").to_pylist()


def test_entities_and_frames(recording):
    reader, scene, path, rec = recording
    entities = {c.entity_path for c in rec.schema().component_columns()}
    expected = {"/world", "/world/ego", "/world/ego_path", "/world/LIDAR_TOP", "/world/boxes"} | {f"/world/{c}" for c in CAMERA_CHANNELS}
    assert expected <= entities
    assert rec.recording_id() == scene
    samples = reader.sample_tokens(scene)
    stamps = [reader.nusc.get("sample", t)["timestamp"] for t in samples]
    for entity in ("/world/LIDAR_TOP", "/world/CAM_FRONT", "/world/boxes", "/world/ego"):
        table = rec.view(index=TIMELINE, contents=entity).select().read_all()
        assert table.num_rows == len(samples) == 2, entity
        got = table.column(TIMELINE).cast("int64").to_pylist()  # nanoseconds since the epoch
        assert got == [s * 1000 for s in stamps]


def test_content_matches_the_root(recording):
    reader, scene, _, rec = recording
    samples = reader.sample_tokens(scene)
    first = reader.nusc.get("sample", samples[0])["data"]
    sweep = reader.lidar_sweep(first["LIDAR_TOP"])
    positions = _column(rec, "/world/LIDAR_TOP", "Position3D")
    np.testing.assert_array_equal(np.array(positions[0], dtype=np.float32), sweep.points[:, :3])
    jpeg = (reader.root / reader.sample_data(first["CAM_BACK"])["filename"]).read_bytes()
    blob = _column(rec, "/world/CAM_BACK", "Blob")[0][0]
    assert bytes(blob) == jpeg
    assert _column(rec, "/world/boxes", "Text") == [["vehicle.car #0", "human.pedestrian.adult #1"]] * 2
    assert _column(rec, "/world/boxes", "track_id") == [[0, 1]] * 2
    assert _column(rec, "/world/boxes", "instance_token")[0] == [b.instance_token for b in reader.boxes(samples[0])]
    centers = np.array(_column(rec, "/world/boxes", "PoseTranslation3D")[1])
    np.testing.assert_allclose(centers, [b.center for b in reader.boxes(samples[1])], atol=1e-5)
    # the hand-made ego drives along +x at 2 m/s from (100, 50): sample times 0 and 0.5 s
    ego = np.array(_column(rec, "/world/ego", "Translation3D")).reshape(-1, 3)
    np.testing.assert_allclose(ego, [[100.0, 50.0, 0.0], [101.0, 50.0, 0.0]], atol=1e-5)
    k = np.array(_column(rec, "/world/CAM_FRONT", "PinholeProjection", index=TIMELINE)[0])
    np.testing.assert_allclose(k.reshape(3, 3).T, reader.camera_frame(first["CAM_FRONT"], load_image=False).intrinsics, rtol=1e-6)


def test_rerun_cli_verifies_the_file(recording):
    exe = shutil.which("rerun")
    assert exe, "the rerun-sdk wheel ships the `rerun` executable"
    r = subprocess.run([exe, "rrd", "verify", str(recording[2])], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
