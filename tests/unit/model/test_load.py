"""Verified loading refuses every tampered or unexpected model folder (FAULTS.md M5, M7, M8)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import onnx
import pytest
from onnx import TensorProto, helper

from streamscore.libs.model.export import write_model_dir
from streamscore.libs.model.load import load_verified
from streamscore.libs.model.manifest import (
    MANIFEST_FILE,
    ONNX_FILE,
    ModelManifest,
    feature_schema_hash,
    sha256_bytes,
)
from streamscore.libs.model.safety import ModelRefused, SafetyLimits
from streamscore.libs.model.session import ScoringSession


def _live(m: ModelManifest) -> str:
    return feature_schema_hash(m.feature_names, m.feature_dtypes)


def _rewrite(model_dir: Path, proto: onnx.ModelProto) -> str:
    """Replace model.onnx with ``proto`` and re-sign the manifest (so only M8 checks refuse)."""
    data = proto.SerializeToString()
    m = ModelManifest.from_json((model_dir / MANIFEST_FILE).read_bytes())
    write_model_dir(model_dir, data, msgspec.structs.replace(m, onnx_sha256=sha256_bytes(data)))
    return m.feature_schema_hash


def _refused(model_dir: Path, live: str, limits: SafetyLimits | None = None) -> ModelRefused:
    with pytest.raises(ModelRefused) as exc:
        load_verified(model_dir, live, limits)
    return exc.value


def test_good_model_loads_and_scores(model_dir: Path) -> None:
    m = ModelManifest.from_json((model_dir / MANIFEST_FILE).read_bytes())
    manifest, data = load_verified(model_dir, _live(m))
    assert manifest == m and sha256_bytes(data) == m.onnx_sha256
    assert manifest.parity["flips"] == 0.0 and manifest.parity["max_abs_diff"] <= 1e-6
    session = ScoringSession.from_verified(manifest, data)
    assert session.version == "1"
    assert (model_dir / "parity.json").exists()


def test_missing_manifest(model_dir: Path) -> None:
    (model_dir / MANIFEST_FILE).unlink()
    assert _refused(model_dir, "x").reason == "manifest_missing"


def test_invalid_manifest(model_dir: Path) -> None:
    (model_dir / MANIFEST_FILE).write_text('{"model_name": "fraud"}')
    assert _refused(model_dir, "x").reason == "manifest_invalid"


def test_permuted_feature_order_is_refused(model_dir: Path) -> None:
    m = ModelManifest.from_json((model_dir / MANIFEST_FILE).read_bytes())
    names = list(m.feature_names)
    names[0], names[1] = names[1], names[0]
    r = _refused(model_dir, feature_schema_hash(names, m.feature_dtypes))
    assert r.reason == "schema_mismatch"


def test_byte_flip_is_refused(model_dir: Path) -> None:
    m = ModelManifest.from_json((model_dir / MANIFEST_FILE).read_bytes())
    raw = bytearray((model_dir / ONNX_FILE).read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (model_dir / ONNX_FILE).write_bytes(bytes(raw))
    assert _refused(model_dir, _live(m)).reason == "hash_mismatch"


def test_missing_onnx(model_dir: Path) -> None:
    m = ModelManifest.from_json((model_dir / MANIFEST_FILE).read_bytes())
    (model_dir / ONNX_FILE).unlink()
    assert _refused(model_dir, _live(m)).reason == "model_missing"


@pytest.mark.parametrize("location", ["../../etc/passwd", "/etc/passwd", "weights.bin"])
def test_external_data_is_refused(model_dir: Path, location: str) -> None:
    proto = onnx.load(model_dir / ONNX_FILE)
    t = helper.make_tensor("w", TensorProto.FLOAT, [4], [0.0] * 4)
    t.ClearField("float_data")
    t.data_location = TensorProto.EXTERNAL
    t.external_data.add(key="location", value=location)
    proto.graph.initializer.append(t)
    r = _refused(model_dir, _rewrite(model_dir, proto))
    assert r.reason == "external_data"
    assert ("escaping" in r.detail) == (location != "weights.bin")


def test_external_data_in_a_node_attribute_is_refused(model_dir: Path) -> None:
    proto = onnx.load(model_dir / ONNX_FILE)
    t = helper.make_tensor("c", TensorProto.FLOAT, [1], [0.0])
    t.ClearField("float_data")
    t.data_location = TensorProto.EXTERNAL
    t.external_data.add(key="location", value="../secret")
    proto.graph.node.append(helper.make_node("Constant", [], ["c_out"], value=t))
    r = _refused(model_dir, _rewrite(model_dir, proto))
    assert r.reason == "external_data" and "escaping" in r.detail


def test_model_local_function_is_refused(model_dir: Path) -> None:
    proto = onnx.load(model_dir / ONNX_FILE)
    fn = helper.make_function(
        "ai.onnx.ml",
        "Sneaky",
        ["x"],
        ["y"],
        [helper.make_node("Identity", ["x"], ["y"])],
        [helper.make_opsetid("", 15)],
    )
    proto.functions.append(fn)
    assert _refused(model_dir, _rewrite(model_dir, proto)).reason == "op_domain"


def test_custom_op_domain_is_refused(model_dir: Path) -> None:
    proto = onnx.load(model_dir / ONNX_FILE)
    proto.opset_import.append(helper.make_opsetid("com.evil", 1))
    proto.graph.node.append(helper.make_node("Pwn", ["score"], ["pwned"], domain="com.evil"))
    assert _refused(model_dir, _rewrite(model_dir, proto)).reason == "op_domain"


def test_custom_node_domain_without_import_is_refused(model_dir: Path) -> None:
    proto = onnx.load(model_dir / ONNX_FILE)
    proto.graph.node.append(helper.make_node("Pwn", ["score"], ["pwned"], domain="com.evil"))
    assert _refused(model_dir, _rewrite(model_dir, proto)).reason == "op_domain"


@pytest.mark.parametrize(("domain", "version"), [("", 99), ("ai.onnx.ml", 42), ("", 1)])
def test_opset_outside_range_is_refused(model_dir: Path, domain: str, version: int) -> None:
    proto = onnx.load(model_dir / ONNX_FILE)
    for op in proto.opset_import:
        if op.domain == domain:
            op.version = version
    assert _refused(model_dir, _rewrite(model_dir, proto)).reason == "opset"


def test_huge_initializer_is_refused(model_dir: Path) -> None:
    proto = onnx.load(model_dir / ONNX_FILE)
    # declares 2^31 floats (8 GiB) without carrying them: refused by declared shape
    t = TensorProto(name="big", data_type=TensorProto.FLOAT, dims=[2**31])
    proto.graph.initializer.append(t)
    assert _refused(model_dir, _rewrite(model_dir, proto)).reason == "initializer_too_large"


def test_large_real_initializer_is_refused(model_dir: Path) -> None:
    proto = onnx.load(model_dir / ONNX_FILE)
    t = helper.make_tensor("big", TensorProto.FLOAT, [1024], [0.5] * 1024)
    proto.graph.initializer.append(t)
    live = _rewrite(model_dir, proto)
    r = _refused(model_dir, live, SafetyLimits(max_initializer_bytes=1000))
    assert r.reason == "initializer_too_large"


def test_model_over_the_size_cap_is_refused(model_dir: Path) -> None:
    m = ModelManifest.from_json((model_dir / MANIFEST_FILE).read_bytes())
    r = _refused(model_dir, _live(m), SafetyLimits(max_model_bytes=1000))
    assert r.reason == "model_too_large"


def test_signature_mismatch_is_refused(model_dir: Path) -> None:
    proto = onnx.load(model_dir / ONNX_FILE)
    proto.graph.input[0].name = "other"
    for node in proto.graph.node:
        node.input[:] = ["other" if i == "features" else i for i in node.input]
    assert _refused(model_dir, _rewrite(model_dir, proto)).reason == "signature_mismatch"


def test_garbage_bytes_are_refused(model_dir: Path) -> None:
    m = ModelManifest.from_json((model_dir / MANIFEST_FILE).read_bytes())
    data = b"\xff\x00not an onnx model" * 10
    write_model_dir(model_dir, data, msgspec.structs.replace(m, onnx_sha256=sha256_bytes(data)))
    assert _refused(model_dir, _live(m)).reason == "onnx_invalid"
