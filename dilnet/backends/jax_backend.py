"""JAX implementations of the correlation Ops for PyTensor's JAX linker.

The forward pass is ``lax.conv_general_dilated``; both gradients are ``jax.vjp`` of it, so they
agree with XLA's own differentiation. Shapes are static under ``jax.jit``, so padding is
resolved at trace time from the actual input and kernel sizes.
"""

import jax
import jax.numpy as jnp
from jax import lax

__all__ = ["funcify_forward", "funcify_grad_inputs", "funcify_grad_weights"]


def _forward_fn(op, dtype):
    def corr(x, W):
        x, W = x.astype(dtype), W.astype(dtype)
        pads = op.resolve_pads(tuple(x.shape[2:]), tuple(W.shape[2:]))
        if op.flip_filters:
            W = jnp.flip(W, axis=tuple(range(2, W.ndim)))
        return lax.conv_general_dilated(
            x,
            W,
            window_strides=op.stride,
            padding=pads,
            rhs_dilation=op.dilation,
            feature_group_count=op.groups,
            precision=lax.Precision.HIGHEST,
        )

    return corr


def funcify_forward(op, node=None, **kwargs):
    return _forward_fn(op, node.outputs[0].dtype)


def funcify_grad_inputs(op, node=None, **kwargs):
    corr = _forward_fn(op, node.outputs[0].dtype)

    def dilated_corr_grad_inputs(W, gy, x):
        x = x.astype(node.outputs[0].dtype)
        _, vjp = jax.vjp(lambda x_: corr(x_, W), x)
        return vjp(gy.astype(node.outputs[0].dtype))[0]

    return dilated_corr_grad_inputs


def funcify_grad_weights(op, node=None, **kwargs):
    corr = _forward_fn(op, node.outputs[0].dtype)

    def dilated_corr_grad_weights(x, gy, W):
        W = W.astype(node.outputs[0].dtype)
        _, vjp = jax.vjp(lambda w: corr(x, w), W)
        return vjp(gy.astype(node.outputs[0].dtype))[0]

    return dilated_corr_grad_weights
