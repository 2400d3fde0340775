"""Analytic FLOPs of a traced function: the matrix-like ops of its graph, counted from their shapes."""

from __future__ import annotations

import math
from collections.abc import Callable

import tensorflow as tf

FLOP_RULE = (
    "2 FLOPs per multiply-add of every Conv2D, Conv2DBackpropInput, Conv2DBackpropFilter, MatMul, "
    "BatchMatMul and Einsum (RoiAlign) op the traced step executes, shapes from the graph at the "
    "measured batch, ops whose results are unused pruned, divided by the batch; Conv2D = "
    "2*H_out*W_out*k_h*k_w*C_in*C_out, Dense = 2*in*out per example; a training step is its forward "
    "plus the backward ops (about 2x the forward of the trained networks: input and weight "
    "gradients); elementwise ops, bias, activations, normalization and optimizer updates are not "
    "counted")

# Op type -> FLOPs of one op. Only the matrix-like ops count (see FLOP_RULE).
_CONV_OPS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")
_BATCH_MATMUL_OPS = ("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")


def _static_shape(tensor: tf.Tensor, op: tf.Operation) -> list[int]:
    shape = tensor.shape
    if shape.rank is None or None in shape.as_list():
        raise ValueError(f"op {op.name} ({op.type}): shape {shape} is not static; trace the function with "
                         "a fixed batch size to count its FLOPs.")
    return shape.as_list()


def op_flops(op: tf.Operation) -> int:
    """FLOPs of one graph op: 2 per multiply-add for the matrix-like ops, 0 for any other op.

    Args:
      op: tf.Operation of a traced graph with static shapes.

    Returns:
      int.

    Raises:
      ValueError: when a counted op's shapes are not static.
    """
    kind = op.type
    if kind in _CONV_OPS:
        # The output gradient has the forward output's shape; the filter is (k_h, k_w, C_in, C_out).
        if kind == "Conv2D":
            output, kernel = op.outputs[0], op.inputs[1]
        elif kind == "Conv2DBackpropInput":
            output, kernel = op.inputs[2], op.inputs[1]
        else:
            output, kernel = op.inputs[2], op.outputs[0]
        k_h, k_w, c_in, _ = _static_shape(kernel, op)
        return 2 * math.prod(_static_shape(output, op)) * k_h * k_w * c_in
    if kind == "MatMul":
        a = _static_shape(op.inputs[0], op)
        inner = a[0] if op.get_attr("transpose_a") else a[1]
        return 2 * math.prod(_static_shape(op.outputs[0], op)) * inner
    if kind in _BATCH_MATMUL_OPS:
        a = _static_shape(op.inputs[0], op)
        inner = a[-2] if op.get_attr("adj_x") else a[-1]
        return 2 * math.prod(_static_shape(op.outputs[0], op)) * inner
    if kind == "Einsum":
        terms, output = op.get_attr("equation").decode().replace(" ", "").split("->")
        sizes = {}
        for term, tensor in zip(terms.split(","), op.inputs):
            shape = _static_shape(tensor, op)
            # Letters before an ellipsis index the leading axes, letters after it the trailing ones.
            head, _, tail = term.partition("...")
            sizes.update(zip(head, shape[:len(head)]))
            sizes.update(zip(tail, shape[len(shape) - len(tail):]))
        contracted = set(terms) - set(output) - {",", "."}
        return 2 * math.prod(_static_shape(op.outputs[0], op)) * math.prod(sizes[c] for c in contracted)
    return 0


def _live_ops(graph: tf.Graph) -> list[tf.Operation]:
    """The ops the function's outputs or side effects depend on (what grappler keeps)."""
    roots = [tensor.op for tensor in getattr(graph, "outputs", [])]
    roots += [op for op in graph.get_operations() if op.op_def is not None and op.op_def.is_stateful]
    seen: set[tf.Operation] = set()
    while roots:
        op = roots.pop()
        if op in seen:
            continue
        seen.add(op)
        roots.extend(tensor.op for tensor in op.inputs)
        roots.extend(op.control_inputs)
    return [op for op in graph.get_operations() if op in seen]


def graph_flops(function: Callable, *args) -> dict[str, int]:
    """Counts the FLOPs of `function(*args)` from its traced graph, split into forward and backward.

    Backward ops are the ones `tf.GradientTape.gradient` creates (under the `gradient_tape` name
    scope). See `FLOP_RULE` for what is counted.

    Args:
      function: a Python callable or `tf.function` (traced without XLA, so that every op is visible).
      *args: tensors (or nests of tensors) with static shapes; only their specs are used.

    Returns:
      dict with int `forward` and `backward` FLOPs of one call.
    """
    specs = tf.nest.map_structure(tf.TensorSpec.from_tensor, args)
    traced = function if isinstance(function, tf.types.experimental.PolymorphicFunction) else tf.function(function)
    graph = traced.get_concrete_function(*specs).graph
    totals = {"forward": 0, "backward": 0}
    for op in _live_ops(graph):
        flops = op_flops(op)
        if flops:
            totals["backward" if "gradient_tape/" in op.name else "forward"] += flops
    return totals


def _flops_fields(totals: dict[str, int], examples: int) -> dict:
    return {
        "flops_per_example": (totals["forward"] + totals["backward"]) // examples,
        "forward_flops_per_example": totals["forward"] // examples,
        "backward_flops_per_example": totals["backward"] // examples,
        "flop_rule": FLOP_RULE,
    }
