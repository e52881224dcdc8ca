"""Refuse ONNX files that are unsafe or not what a tree model should be (FAULTS.md M8).

Checked on the parsed model, before onnxruntime ever sees it:

1. no tensor anywhere (initializers, sparse initializers, node attributes,
   sub-graphs) stores its data outside the file (``external_data``): a
   ``location`` such as ``../../etc/passwd`` would make the runtime read any
   file; we never need external data for a tree model, so any is refused;
2. only the default domain and ``ai.onnx.ml`` (TreeEnsemble*) are imported or
   used by nodes, and no model-local functions (a custom op domain could name
   a custom-op library);
3. each domain's opset lies in the supported range;
4. no initializer is larger than ``max_initializer_bytes`` (by declared shape,
   so a tensor that claims to be huge is refused even with no data);
5. the file is not larger than ``max_model_bytes`` (checked on the byte length,
   before parsing).

Every refusal is a :class:`ModelRefused` with a stable ``reason`` code (for the
metric and the log) and a human ``detail``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import AttributeProto, GraphProto, ModelProto, TensorProto


class ModelRefused(Exception):  # noqa: N818 (a refusal is the expected outcome, not an error)
    """A model folder was refused at load; the previous model keeps serving.

    ``reason`` is one of: ``manifest_missing``, ``manifest_invalid``,
    ``schema_mismatch``, ``model_missing``, ``model_too_large``,
    ``hash_mismatch``, ``onnx_invalid``, ``external_data``, ``op_domain``,
    ``opset``, ``initializer_too_large``, ``signature_mismatch`` (and, for the
    native booster of :func:`~.reasons.load_booster`, ``booster_missing``,
    ``booster_hash_mismatch``).
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


ALLOWED_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})


def _default_opsets() -> dict[str, tuple[int, int]]:
    # onnxmltools 1.16 emits ai.onnx.ml 1 (TreeEnsembleClassifier) and we add
    # the default domain for Gather; onnxruntime 1.32 runs up to these maxima.
    return {"": (9, 21), "ai.onnx": (9, 21), "ai.onnx.ml": (1, 5)}


@dataclass(frozen=True)
class SafetyLimits:
    """What a model may contain. The defaults fit tree ensembles of a few thousand trees."""

    max_model_bytes: int = 64 * 1024 * 1024
    max_initializer_bytes: int = 1024 * 1024
    opsets: dict[str, tuple[int, int]] = field(default_factory=_default_opsets)


def _tensors(graph: GraphProto) -> Iterator[tuple[str, TensorProto]]:
    """Every tensor of a graph and its sub-graphs, with where it was found."""
    for t in graph.initializer:
        yield f"initializer {t.name!r}", t
    for st in graph.sparse_initializer:
        yield f"sparse initializer {st.values.name!r}", st.values
        yield f"sparse initializer {st.indices.name!r}", st.indices
    for node in graph.node:
        for attr in node.attribute:
            where = f"attribute {attr.name!r} of node {node.name!r}"
            if attr.type == AttributeProto.TENSOR:
                yield where, attr.t
            elif attr.type == AttributeProto.TENSORS:
                for t in attr.tensors:
                    yield where, t
            elif attr.type == AttributeProto.GRAPH:
                yield from _tensors(attr.g)
            elif attr.type == AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _tensors(g)


def _nodes_domains(graph: GraphProto) -> Iterator[tuple[str, str]]:
    for node in graph.node:
        yield node.op_type, node.domain
        for attr in node.attribute:
            if attr.type == AttributeProto.GRAPH:
                yield from _nodes_domains(attr.g)
            elif attr.type == AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _nodes_domains(g)


def _declared_bytes(t: TensorProto) -> int:
    n = int(np.prod(list(t.dims), dtype=np.int64)) if len(t.dims) else 1
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
    except (KeyError, ValueError, TypeError):
        itemsize = 8
    return max(n * itemsize, len(t.raw_data))


def check_external_data(model: ModelProto) -> None:
    """Refuse any tensor whose data lives outside the file."""
    for where, t in _tensors(model.graph):
        if t.data_location == TensorProto.EXTERNAL or len(t.external_data) > 0:
            entries = {e.key: e.value for e in t.external_data}
            location = entries.get("location", "")
            escapes = ".." in location.replace("\\", "/").split("/") or location.startswith(
                ("/", "\\")
            )
            kind = "escaping the model folder " if escapes else ""
            detail = f"{where} has external data {kind}(location {location!r})"
            raise ModelRefused("external_data", detail)


def check_domains(model: ModelProto, limits: SafetyLimits) -> None:
    """Refuse custom op domains, local functions and opsets outside the supported range."""
    if len(model.functions) > 0:
        names = [f"{f.domain}:{f.name}" for f in model.functions]
        raise ModelRefused("op_domain", f"model-local functions are not allowed: {names}")
    for op in model.opset_import:
        if op.domain not in ALLOWED_DOMAINS:
            raise ModelRefused("op_domain", f"opset import of domain {op.domain!r}")
        lo, hi = limits.opsets.get(op.domain, (0, -1))
        if not lo <= op.version <= hi:
            detail = f"domain {op.domain or 'ai.onnx'!r} opset {op.version} outside [{lo}, {hi}]"
            raise ModelRefused("opset", detail)
    for op_type, domain in _nodes_domains(model.graph):
        if domain not in ALLOWED_DOMAINS:
            raise ModelRefused("op_domain", f"node {op_type!r} in domain {domain!r}")


def check_initializers(model: ModelProto, limits: SafetyLimits) -> None:
    """Refuse tensors larger than ``max_initializer_bytes`` (declared shape or data)."""
    for where, t in _tensors(model.graph):
        size = _declared_bytes(t)
        if size > limits.max_initializer_bytes:
            detail = f"{where} is {size} bytes > {limits.max_initializer_bytes}"
            raise ModelRefused("initializer_too_large", detail)


def parse_checked(data: bytes, limits: SafetyLimits | None = None) -> ModelProto:
    """Parse ONNX bytes and run every check above; the parsed model if all pass."""
    limits = limits or SafetyLimits()
    if len(data) > limits.max_model_bytes:
        detail = f"{len(data)} bytes > {limits.max_model_bytes}"
        raise ModelRefused("model_too_large", detail)
    model = ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # protobuf raises DecodeError or RuntimeWarning-like errors
        raise ModelRefused("onnx_invalid", f"not an ONNX model: {exc}") from exc
    check_external_data(model)
    check_domains(model, limits)
    check_initializers(model, limits)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ModelRefused("onnx_invalid", str(exc).splitlines()[0]) from exc
    return model
