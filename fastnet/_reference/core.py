"""Numpy twins of the activation, dense, batch-normalisation and dropout kernels."""
import numpy as np
from scipy import special

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _sigmoid(z):
    return special.expit(z)


def _softplus(z):
    return np.logaddexp(0, z)


def activation(name, z, alpha=0.0):
    """Forward of a named activation (softmax and log_softmax over the last axis)."""
    if name == "linear":
        return z.copy()
    if name == "relu":
        return np.maximum(z, 0)
    if name == "sigmoid":
        return _sigmoid(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "softmax":
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    if name == "log_softmax":
        s = z - z.max(axis=-1, keepdims=True)
        return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))
    if name == "elu":
        return np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0)))
    if name == "selu":
        return SELU_SCALE * np.where(z > 0, z, SELU_ALPHA * np.expm1(np.minimum(z, 0)))
    if name == "softplus":
        return _softplus(z)
    if name == "softsign":
        return z / (1 + np.abs(z))
    if name in ("silu", "swish"):
        return z * _sigmoid(z)
    if name == "gelu":
        return 0.5 * z * (1 + special.erf(z / np.sqrt(2)))
    if name == "gelu_tanh":
        return 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z ** 3)))
    if name == "hard_sigmoid":
        return np.clip(z + 3, 0, 6) / 6
    if name in ("hard_silu", "hard_swish"):
        return z * np.clip(z + 3, 0, 6) / 6
    if name == "relu6":
        return np.clip(z, 0, 6)
    if name == "leaky_relu":
        return np.where(z > 0, z, alpha * z)
    if name == "exponential":
        return np.exp(z)
    if name == "mish":
        return z * np.tanh(_softplus(z))
    raise ValueError(f"no reference for activation {name!r}")


def activation_grad(name, z, dy, alpha=0.0):
    """dL/dz given dL/dy, from the input z (independent of the kernel's y-based forms)."""
    y = activation(name, z, alpha)
    if name == "linear":
        return dy.copy()
    if name == "relu":
        return dy * (z > 0)
    if name == "sigmoid":
        return dy * y * (1 - y)
    if name == "tanh":
        return dy * (1 - y ** 2)
    if name == "softmax":
        return y * (dy - (dy * y).sum(axis=-1, keepdims=True))
    if name == "log_softmax":
        return dy - np.exp(y) * dy.sum(axis=-1, keepdims=True)
    if name == "elu":
        return dy * np.where(z > 0, 1, alpha * np.exp(np.minimum(z, 0)))
    if name == "selu":
        return dy * SELU_SCALE * np.where(z > 0, 1, SELU_ALPHA * np.exp(np.minimum(z, 0)))
    if name == "softplus":
        return dy * _sigmoid(z)
    if name == "softsign":
        return dy / (1 + np.abs(z)) ** 2
    if name in ("silu", "swish"):
        s = _sigmoid(z)
        return dy * (s + z * s * (1 - s))
    if name == "gelu":
        return dy * (0.5 * (1 + special.erf(z / np.sqrt(2))) + z * np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi))
    if name == "gelu_tanh":
        c = np.sqrt(2 / np.pi)
        t = np.tanh(c * (z + 0.044715 * z ** 3))
        return dy * (0.5 * (1 + t) + 0.5 * z * (1 - t * t) * c * (1 + 3 * 0.044715 * z * z))
    if name == "hard_sigmoid":
        return dy * ((z > -3) & (z < 3)) / 6
    if name in ("hard_silu", "hard_swish"):
        return dy * np.where(z <= -3, 0, np.where(z >= 3, 1, (2 * z + 3) / 6))
    if name == "relu6":
        return dy * ((z > 0) & (z < 6))
    if name == "leaky_relu":
        return dy * np.where(z > 0, 1, alpha)
    if name == "exponential":
        return dy * np.exp(z)
    if name == "mish":
        sp = _softplus(z)
        t = np.tanh(sp)
        return dy * (t + z * (1 - t * t) * _sigmoid(z))
    raise ValueError(f"no reference for activation {name!r}")


def dense_forward(x, w, b, act="linear", alpha=0.0):
    z = x @ w
    if b is not None:
        z = z + b
    return activation(act, z, alpha), z


def dense_backward(dy, x, w, z, act="linear", alpha=0.0):
    dz = activation_grad(act, z, dy, alpha)
    return dz @ w.T, x.T @ dz, dz.sum(axis=0)


def batchnorm_forward_train(x, gamma, beta, epsilon):
    """x (rows, channels). Returns y, mean, biased variance."""
    mean = x.mean(axis=0)
    var = ((x - mean) ** 2).mean(axis=0)
    y = (x - mean) / np.sqrt(var + epsilon) * gamma + beta
    return y, mean, var


def batchnorm_backward_train(dy, x, gamma, epsilon):
    n = x.shape[0]
    mean = x.mean(axis=0)
    var = ((x - mean) ** 2).mean(axis=0)
    invstd = 1 / np.sqrt(var + epsilon)
    xhat = (x - mean) * invstd
    dbeta = dy.sum(axis=0)
    dgamma = (dy * xhat).sum(axis=0)
    dxhat = dy * gamma
    dx = invstd / n * (n * dxhat - dxhat.sum(axis=0) - xhat * (dxhat * xhat).sum(axis=0))
    return dx, dgamma, dbeta


def batchnorm_forward_infer(x, gamma, beta, moving_mean, moving_var, epsilon):
    return (x - moving_mean) / np.sqrt(moving_var + epsilon) * gamma + beta


def batchnorm_backward_infer(dy, x, gamma, moving_mean, moving_var, epsilon):
    invstd = 1 / np.sqrt(moving_var + epsilon)
    return dy * gamma * invstd, (dy * (x - moving_mean) * invstd).sum(axis=0), dy.sum(axis=0)


def _mix32(x):
    x = np.asarray(x, dtype=np.uint32)
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint32(16))
        x = x * np.uint32(0x7FEB352D)
        x = x ^ (x >> np.uint32(15))
        x = x * np.uint32(0x846CA68B)
        x = x ^ (x >> np.uint32(16))
    return x


def dropout_uniform(n, seed, offset=0):
    """The u(seed, offset + i) in [0, 1) the dropout kernel draws for elements 0..n-1."""
    seed = int(seed)
    k1 = _mix32(np.uint32(seed & 0xFFFFFFFF) ^ np.uint32(0x9E3779B9))
    with np.errstate(over="ignore"):
        k2 = _mix32(np.uint32(seed >> 32) + k1)
        i = np.arange(offset, offset + n, dtype=np.uint64)
        lo = (i & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        hi = (i >> np.uint64(32)).astype(np.uint32)
        u = _mix32(_mix32(lo ^ k1) + (hi ^ k2)) >> np.uint32(8)
    return u.astype(np.float64) / 16777216.0


def dropout_forward(x, rate, seed, offset=0):
    keep = dropout_uniform(x.size, seed, offset).reshape(x.shape) >= rate
    return np.where(keep, x / (1 - rate), 0).astype(x.dtype), keep


def layernorm_forward(x, gamma, beta, epsilon):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + epsilon) * gamma + beta


def layernorm_backward(dy, x, gamma, epsilon):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    invstd = 1 / np.sqrt(var + epsilon)
    xhat = (x - mean) * invstd
    g = dy * gamma
    dx = invstd * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    return dx, (dy * xhat).reshape(-1, x.shape[-1]).sum(0), dy.reshape(-1, x.shape[-1]).sum(0)
