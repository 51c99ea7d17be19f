"""`data validate` and the reader's pre-checks: errors (what breaks loading) vs warnings (absent
optional parts), on copies of the hand-made root with one part removed or broken."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

from genesis_drive.cli import main
from genesis_drive.data.nuscenes import NuScenesReader
from genesis_drive.data.validate import Problem, check_tables, errors, validate_root
from genesis_drive.errors import DataError

from .handmade import write_handmade

LOCATION = "handmade-town"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return write_handmade(tmp_path_factory.mktemp("hm") / "root")


@pytest.fixture
def root(pristine, tmp_path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(pristine, dst)
    return dst


def _table(root: Path, name: str) -> Path:
    return root / "v1.0-mini" / f"{name}.json"


def _edit(root: Path, name: str, fn) -> None:
    path = _table(root, name)
    path.write_text(json.dumps(fn(json.loads(path.read_text()))))


def _validate_cli(root: Path, capsys) -> tuple[int, list[str]]:
    rc = main(["data", "validate", str(root)])
    return rc, capsys.readouterr().out.strip().splitlines()


def test_clean_root_has_no_problem(pristine, capsys):
    assert validate_root(pristine) == []
    rc, lines = _validate_cli(pristine, capsys)
    assert rc == 0 and lines == [f"0 error(s), 0 warning(s) in {pristine}"]


def test_problem_severity_is_checked():
    with pytest.raises(ValueError, match="severity"):
        Problem("x", "f", "m", severity="fatal")
    assert str(Problem("a.json", "f", "m", "t1", "warning")) == "warning: a.json: record t1 field 'f': m"


def test_root_without_map_expansion_exits_0_with_warning(root, capsys):
    """v1.0-mini as first downloaded: tables, data and raster maps, no maps/expansion/."""
    shutil.rmtree(root / "maps" / "expansion")
    exp = root / "maps" / "expansion" / f"{LOCATION}.json"
    problems = validate_root(root)
    assert len(problems) == 1 and problems[0].severity == "warning" and errors(problems) == []
    assert problems[0].path == str(exp) and "map expansion is a separate download" in problems[0].message
    rc, lines = _validate_cli(root, capsys)
    assert rc == 0
    assert lines[0].startswith(f"warning: {exp}:") and "vector map of location 'handmade-town' missing" in lines[0]
    assert lines[-1] == f"0 error(s), 1 warning(s) in {root}"
    # the reader loads it, with a warning naming the missing file
    with pytest.warns(UserWarning, match=rf"vector map\(s\) {LOCATION}\.json not found"):
        reader = NuScenesReader(root)
    assert len(reader.scene_tokens()) == 1
    # code that needs the map stops with the file's name; other code gets empty layers and a warning
    with pytest.raises(DataError, match=rf"{exp}: field 'log.location': vector map not found; this needs the map"):
        reader.map_layers(LOCATION, required=True)
    assert not reader.has_map(LOCATION)
    with pytest.warns(UserWarning, match="map conditions will be empty"):
        assert reader.map_layers(LOCATION).is_empty()
    with pytest.raises(DataError, match="vector map not found"):  # the empty cache does not hide it
        reader.map_layers(LOCATION, required=True)


def test_root_with_map_loads_without_warning(pristine):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reader = NuScenesReader(pristine)
        assert reader.has_map(LOCATION)
        assert not reader.map_layers(LOCATION, required=True).is_empty()


def test_broken_table_exits_1(root, capsys):
    path = _table(root, "sample")
    path.write_text(path.read_text()[:-20])
    problems = validate_root(root)
    assert len(problems) == 1 and problems[0].is_error and "not valid JSON" in problems[0].message
    rc, lines = _validate_cli(root, capsys)
    assert rc == 1 and lines[0].startswith(f"error: {path}:") and lines[-1] == f"1 error(s), 0 warning(s) in {root}"


def test_errors_are_printed_before_warnings(root, capsys):
    shutil.rmtree(root / "maps" / "expansion")
    rows = json.loads(_table(root, "sample_data").read_text())
    victim = next(r for r in rows if r["filename"].endswith(".jpg"))
    (root / victim["filename"]).unlink()
    rc, lines = _validate_cli(root, capsys)
    assert rc == 1
    assert [line.split(":")[0] for line in lines[:-1]] == ["error", "warning"]
    assert victim["token"] in lines[0] and "not found" in lines[0]
    assert lines[-1] == f"1 error(s), 1 warning(s) in {root}"


def test_whole_maps_folder_missing_is_an_error(root):
    """The raster maps ship in every nuScenes version archive and the devkit's load asserts on them."""
    shutil.rmtree(root / "maps")
    problems = validate_root(root)
    errs = errors(problems)
    assert len(errs) == 1 and errs[0].field == "filename" and "raster map" in errs[0].message and "not found" in errs[0].message
    assert [p.severity for p in problems if p not in errs] == ["warning"]  # the vector map too, as a warning
    with pytest.raises(DataError, match=r"map\.json: record \w+ field 'filename': raster map .*\.png not found"):
        NuScenesReader(root)


def test_log_without_map_record_is_an_error(root):
    _edit(root, "map", lambda rows: [{**rows[0], "log_tokens": []}])
    errs = errors(validate_root(root))
    assert len(errs) == 1 and errs[0].path.endswith("log.json") and "no map record lists this log" in errs[0].message
    with pytest.raises(DataError, match="no map record lists this log"):
        NuScenesReader(root)


def test_map_record_listing_an_unknown_log_is_a_warning(root):
    _edit(root, "map", lambda rows: [{**rows[0], "log_tokens": rows[0]["log_tokens"] + ["feedface"]}])
    problems = validate_root(root)
    assert [(p.severity, p.field) for p in problems] == [("warning", "log_tokens")] and "'feedface'" in problems[0].message
    NuScenesReader(root)  # the devkit ignores it


def test_lidarseg_checked_only_when_present(root):
    """lidarseg is a separate nuScenes download: absent is fine, present without labels breaks the devkit."""
    assert check_tables(root, "v1.0-mini") == []
    _table(root, "lidarseg").write_text(json.dumps([{"token": "a", "sample_data_token": "b", "filename": "lidarseg/v1.0-mini/a.bin"}]))
    text = "\n".join(str(p) for p in check_tables(root, "v1.0-mini"))
    assert "every category needs 'index'" not in text  # the writer's categories carry an index
    assert "label folder is missing" in text
    with pytest.raises(DataError, match="label folder is missing"):
        NuScenesReader(root)
    (root / "lidarseg" / "v1.0-mini").mkdir(parents=True)
    assert "0 label files (.bin) for 1 lidarseg records" in str(check_tables(root, "v1.0-mini")[0])
    (root / "lidarseg" / "v1.0-mini" / "a.bin").write_bytes(b"\0" * 8)
    assert check_tables(root, "v1.0-mini") == []
    NuScenesReader(root)


def test_extra_tables(root):
    """genesis-drive's extras are optional; present ones must be readable."""
    _table(root, "human_pose").unlink()
    assert validate_root(root) == []
    assert NuScenesReader(root).human_poses(NuScenesReader(root).nusc.sample[0]["token"]) == []
    _table(root, "synthtown_fault").write_text("[{")
    errs = errors(validate_root(root))
    assert len(errs) == 1 and errs[0].path.endswith("synthtown_fault.json") and "not valid JSON" in errs[0].message


def test_human_pose_rows(root):
    _edit(root, "human_pose", lambda rows: [{**rows[0], "sample_annotation_token": "deadbeef"}] + rows[1:])
    problems = validate_root(root)
    assert [(p.severity, p.field) for p in problems] == [("warning", "sample_annotation_token")]
    _edit(root, "human_pose", lambda rows: [{k: v for k, v in rows[0].items() if k != "keypoints"}] + rows[1:])
    assert [(p.severity, p.field) for p in validate_root(root)] == [("error", "keypoints")]
    with pytest.raises(DataError, match=r"human_pose\.json.*field 'keypoints': missing"):
        NuScenesReader(root)
