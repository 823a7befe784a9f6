"""A small ONNX graph builder: operators by name, numpy constants, Loop bodies.

``g.Add(x, y)`` appends an ``Add`` node and returns the name of its output; inputs are
value names (``str``), python numbers or numpy arrays (made constants: ``float`` ->
float32, ``int`` -> int64, ``bool`` -> bool; numpy arrays keep their dtype, so float64 is
only ever asked for explicitly). Constants live in the root graph, where Loop bodies see
them as outer-scope values. Names are unique across the root graph and its bodies.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["BOOL", "DOUBLE", "FLOAT", "INT64", "Graph", "Value"]

FLOAT = TensorProto.FLOAT
DOUBLE = TensorProto.DOUBLE
INT64 = TensorProto.INT64
BOOL = TensorProto.BOOL

#: An operator input: a value name, or a python number / numpy array made a constant.
Value = str | float | int | bool | np.ndarray | np.generic | None

_ONNX_DTYPES = {
    np.dtype(np.float32): FLOAT,
    np.dtype(np.float64): DOUBLE,
    np.dtype(np.int64): INT64,
    np.dtype(np.bool_): BOOL,
}


class Graph:
    """An ONNX graph under construction (the root, or a Loop body of one)."""

    def __init__(self, name: str, parent: Graph | None = None) -> None:
        self.name = name
        self.root: Graph = parent.root if parent is not None else self
        self.nodes: list[onnx.NodeProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        if parent is None:
            self.initializers: list[onnx.TensorProto] = []
            self._ids: Iterator[int] = itertools.count()
            self._constants: dict[tuple[str, tuple[int, ...], bytes], str] = {}

    # -- names and constants ------------------------------------------------------------

    def fresh(self, hint: str) -> str:
        return f"{hint}_{next(self.root._ids)}"

    def const(self, value: Any, dtype: Any = None) -> str:
        """A constant (deduplicated by dtype, shape and bytes) in the root graph."""
        if dtype is not None:
            array = np.asarray(value, dtype=dtype)
        elif isinstance(value, bool | np.bool_):
            array = np.asarray(value, dtype=np.bool_)
        elif isinstance(value, int):
            array = np.asarray(value, dtype=np.int64)
        elif isinstance(value, float):
            array = np.asarray(value, dtype=np.float32)
        else:
            array = np.asarray(value)
        if array.dtype not in _ONNX_DTYPES:
            raise TypeError(f"no ONNX constant for dtype {array.dtype}; convert it first")
        root = self.root
        key = (array.dtype.str, array.shape, array.tobytes())
        name = root._constants.get(key)
        if name is None:
            name = self.fresh("const")
            root.initializers.append(numpy_helper.from_array(array.copy(order="C"), name))
            root._constants[key] = name
        return name

    def _value(self, value: Value) -> str:
        if value is None:
            return ""  # an omitted optional input
        if isinstance(value, str):
            return value
        return self.const(value)

    # -- operators ------------------------------------------------------------------------

    def op(self, op_type: str, *inputs: Value, outputs: int = 1, **attrs: Any) -> Any:
        """Append one node; returns its output name, or a tuple of names if ``outputs > 1``."""
        names = [self.fresh(op_type.lower()) for _ in range(outputs)]
        node = helper.make_node(
            op_type, [self._value(v) for v in inputs], names, name=names[0], **attrs
        )
        self.nodes.append(node)
        return names[0] if outputs == 1 else tuple(names)

    def __getattr__(self, op_type: str) -> Callable[..., Any]:
        if not op_type[:1].isupper():
            raise AttributeError(op_type)
        return functools.partial(self.op, op_type)

    # -- inputs, outputs, bodies ----------------------------------------------------------

    def input(self, name: str, elem_type: int, shape: Sequence[int | str | None] | None) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def output(
        self, value: str, name: str, elem_type: int, shape: Sequence[int | str | None] | None
    ) -> str:
        self.nodes.append(helper.make_node("Identity", [value], [name]))
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def body(self, name: str) -> Graph:
        """A subgraph (e.g. a Loop body) sharing this graph's constants and names."""
        return Graph(name, parent=self)

    def proto(self) -> onnx.GraphProto:
        initializers = self.initializers if self.root is self else []
        return helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, initializers)
