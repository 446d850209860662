"""runtime.artifact: the manifest schema, hashes and clear errors for bad artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.artifact import ArtifactError, ArtifactSpec, load_artifact, write_artifact


def spec(**over: object) -> ArtifactSpec:
    fields: dict[str, object] = dict(
        obs_dim=3,
        act_dim=2,
        latent_dim=4,
        obs_names=["x", "y", "z"],
        action_names=["vx", "vy"],
        action_low=[-1.0, -1.0],
        action_high=[1.0, 1.0],
        control_hz=10.0,
    )
    fields.update(over)
    return ArtifactSpec(**fields)  # type: ignore[arg-type]


def test_round_trip_records_hashes_and_dims(tmp_path: Path) -> None:
    art = write_artifact(tmp_path / "a", b"enc-bytes", b"pol-bytes", spec())
    again = load_artifact(tmp_path / "a")
    assert again.manifest == art.manifest and again.sha256 == art.sha256
    assert art.manifest.transition_dim == 2 * 3 + 2 + 1
    assert art.encoder_path.read_bytes() == b"enc-bytes"
    assert "zshot" in art.manifest.versions


def test_tampered_file_is_refused_naming_it(tmp_path: Path) -> None:
    write_artifact(tmp_path, b"enc", b"pol", spec())
    (tmp_path / "policy.onnx").write_bytes(b"pol!")
    with pytest.raises(ArtifactError, match=r"policy\.onnx: sha256"):
        load_artifact(tmp_path)


def test_missing_file_and_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no manifest.json"):
        load_artifact(tmp_path)
    write_artifact(tmp_path, b"enc", b"pol", spec())
    (tmp_path / "encoder.onnx").unlink()
    with pytest.raises(ArtifactError, match="encoder file encoder.onnx is missing"):
        load_artifact(tmp_path)


def test_manifest_dims_must_agree(tmp_path: Path) -> None:
    write_artifact(tmp_path, b"enc", b"pol", spec())
    m = json.loads((tmp_path / "manifest.json").read_text())
    m["obs_dim"] = 4
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match="obs_names has 3 entries, expected 4"):
        load_artifact(tmp_path)


def test_unknown_format_version_is_named(tmp_path: Path) -> None:
    write_artifact(tmp_path, b"enc", b"pol", spec())
    m = json.loads((tmp_path / "manifest.json").read_text())
    m["format_version"] = 99
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match="format_version 99"):
        load_artifact(tmp_path)


def test_path_escape_is_refused(tmp_path: Path) -> None:
    write_artifact(tmp_path, b"enc", b"pol", spec())
    m = json.loads((tmp_path / "manifest.json").read_text())
    m["files"]["encoder"]["path"] = "../encoder.onnx"
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match="inside the artifact"):
        load_artifact(tmp_path)


@pytest.mark.parametrize(
    "over, msg",
    [
        ({"action_low": [1.0, -1.0]}, "low < high"),
        ({"prior_var": [1.0, 0.0, 1.0, 1.0]}, "prior_var"),
        ({"action_names": ["vx"]}, "action_names has 1"),
    ],
)
def test_bad_spec_is_rejected(over: dict[str, object], msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        spec(**over)


def test_written_files_are_world_readable(tmp_path: Path) -> None:
    write_artifact(tmp_path, b"enc", b"pol", spec())
    for name in ("encoder.onnx", "policy.onnx", "manifest.json"):
        assert (tmp_path / name).stat().st_mode & 0o444 == 0o444, name


def test_published_json_schema_is_the_manifest_models() -> None:
    """runtime/manifest.schema.json is what load_artifact's pydantic model generates."""
    import json

    from runtime.artifact import SCHEMA_PATH, Manifest, manifest_json_schema

    published = json.loads(SCHEMA_PATH.read_text())
    assert published == manifest_json_schema()
    assert set(published["properties"]) == set(Manifest.model_fields)
    required = {k for k, f in Manifest.model_fields.items() if f.is_required()}
    assert set(published["required"]) == required


def test_a_manifest_rate_of_1e_9_hz_is_refused(tmp_path: Path) -> None:
    import json

    from runtime.artifact import ArtifactError, load_artifact
    from tests.runtime.onnx_fixture import make_artifact

    make_artifact(tmp_path / "a", seed=0)
    manifest = tmp_path / "a" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["control_hz"] = 1e-9
    manifest.write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="control_hz"):
        load_artifact(tmp_path / "a")
