"""Refuse model bytes that are not ONNX or that ask for more than a fleetserve model needs.

Pure: bytes in, a verdict out. The builder exports the default ONNX domain (opset 17:
Gather, Unsqueeze, MatMul, Squeeze, Softmax and, after int8 quantization, DynamicQuantizeLinear,
MatMulInteger, DequantizeLinear). An int4 table is looked up by
``com.microsoft.GatherBlockQuantized``, and the graph it ships is onnxruntime's own
optimization of that export (``models/optimize.py``), which fuses the int8 head into
``com.microsoft.DynamicQuantizeMatMul``; those kernels are compiled into onnxruntime, so
the domain is allowed. Anything else would need a custom-op library, which fleetserve
never registers; it is refused here with a clear message rather than by an obscure
"no kernel" error, and long before onnxruntime parses anything.

External tensor data is refused as well: a session built from bytes resolves those paths
against the worker's working directory, i.e. a snapshot could make the worker read files
outside the store.

Cost, measured on fleet snapshots (134 KB, upb protobuf): the parse about 10 us, the walk
over domains and tensors 40-60 us, 72 us median for the whole check inside a real miss,
against 670 us for onnxruntime to build the session. Cheap enough to stay on the miss path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from onnx import AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto

ALLOWED_DOMAINS = frozenset({"", "ai.onnx", "com.microsoft"})


class NotOnnx(ValueError):
    """The bytes do not decode as an ONNX model with a graph."""


class RefusedModel(ValueError):
    """A valid ONNX model that uses something fleetserve does not allow."""


def check_model_bytes(data: bytes, max_tensor_bytes: int | None = None) -> None:
    """Raise :class:`NotOnnx` or :class:`RefusedModel`; return when the bytes are acceptable.

    ``max_tensor_bytes`` caps what the model's stored tensors declare (shape times element
    size), which is what a session would allocate for them, whatever the file holds.
    """
    model = parse_model(data)
    if max_tensor_bytes is not None:
        declared = declared_tensor_bytes(model)
        if declared > max_tensor_bytes:
            raise RefusedModel(
                f"its tensors declare {declared} bytes, over the worker's cap of "
                f"{max_tensor_bytes} (--max-model-size)"
            )
    foreign = sorted(set(model_domains(model)) - ALLOWED_DOMAINS)
    if foreign:
        raise RefusedModel(
            f"uses operator domain(s) {', '.join(map(repr, foreign))}; only the standard "
            f"ONNX domains {sorted(ALLOWED_DOMAINS)} are served and custom-op libraries are "
            "never loaded"
        )
    external = [t.name for t in _tensors(model) if _is_external(t)]
    if external:
        raise RefusedModel(
            f"tensor(s) {', '.join(external[:3])} reference external data files; a snapshot "
            "must be self-contained"
        )


def parse_model(data: bytes) -> ModelProto:
    model = ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # protobuf's DecodeError differs between its backends
        raise NotOnnx(f"not an ONNX model ({type(exc).__name__}: {exc})") from None
    # Protobuf accepts many byte strings as a message full of unknown fields; a real model
    # has an IR version, an opset and a graph with nodes.
    if model.ir_version <= 0 or not model.opset_import or not model.graph.node:
        raise NotOnnx("not an ONNX model (no IR version, opset import or graph nodes)")
    return model


def model_domains(model: ModelProto) -> Iterator[str]:
    """Every operator domain the model imports or uses, in its graphs and local functions."""
    yield from (opset.domain for opset in model.opset_import)
    yield from _node_domains(model.graph.node)
    for function in model.functions:
        yield function.domain
        yield from (opset.domain for opset in function.opset_import)
        yield from _node_domains(function.node)


def _node_domains(nodes: Iterable[NodeProto]) -> Iterator[str]:
    for node in nodes:
        yield node.domain
        for subgraph in _subgraphs(node):
            yield from _node_domains(subgraph.node)


def _graphs(graph: GraphProto) -> Iterator[GraphProto]:
    """``graph`` and every graph nested in its nodes (If, Loop, Scan bodies)."""
    yield graph
    for node in graph.node:
        for subgraph in _subgraphs(node):
            yield from _graphs(subgraph)


def _subgraphs(node: NodeProto) -> Iterator[GraphProto]:
    for attribute in node.attribute:
        if attribute.type == AttributeProto.GRAPH:
            yield attribute.g
        elif attribute.type == AttributeProto.GRAPHS:
            yield from attribute.graphs


def _tensors(model: ModelProto) -> Iterator[TensorProto]:
    """Every stored tensor: initializers (dense and sparse) and constant attributes."""
    for graph in _graphs(model.graph):
        yield from graph.initializer
        yield from (sparse.values for sparse in graph.sparse_initializer)
        for node in graph.node:
            yield from (a.t for a in node.attribute if a.type == AttributeProto.TENSOR)


# Bytes per element of each ONNX tensor data type (strings count one byte per element: their
# contents are in the file, which the caller caps separately).
_ELEMENT_BYTES: dict[int, int] = {
    TensorProto.FLOAT: 4, TensorProto.UINT8: 1, TensorProto.INT8: 1, TensorProto.UINT16: 2,
    TensorProto.INT16: 2, TensorProto.INT32: 4, TensorProto.INT64: 8, TensorProto.STRING: 1,
    TensorProto.BOOL: 1, TensorProto.FLOAT16: 2, TensorProto.DOUBLE: 8, TensorProto.UINT32: 4,
    TensorProto.UINT64: 8, TensorProto.COMPLEX64: 8, TensorProto.COMPLEX128: 16,
    TensorProto.BFLOAT16: 2,
}  # fmt: skip


def declared_tensor_bytes(model: ModelProto) -> int:
    """What the model's stored tensors (initializers, constants) declare, in bytes."""
    total = 0
    for tensor in _tensors(model):
        elements = 1
        for dim in tensor.dims:
            elements *= max(int(dim), 0)
        total += elements * _ELEMENT_BYTES.get(tensor.data_type, 8)
    return total


def _is_external(tensor: TensorProto) -> bool:
    return tensor.data_location == TensorProto.EXTERNAL or bool(tensor.external_data)
