"""Numpy twins of the loss kernels: per-sample losses written as plainly as possible.

Each function follows the formula of the matching fastnet (and Keras 3) loss literally:
probabilities clipped to ``[eps, 1 - eps]`` with the bounds in the input's dtype,
categorical probabilities renormalised before clipping, ``maximum``/``clip`` as written,
so finite differences of these functions give the gradient the kernels must return.
"""
import numpy as np
from scipy import special

EPS = 1e-7


def _clip(x, lo, hi):
    return np.minimum(np.maximum(x, x.dtype.type(lo)), x.dtype.type(hi))


def mse(t, p):
    return np.mean((t - p) ** 2, axis=-1)


def mae(t, p):
    return np.mean(np.abs(t - p), axis=-1)


def mape(t, p, eps=EPS):
    return 100.0 * np.mean(np.abs((t - p) / np.maximum(np.abs(t), p.dtype.type(eps))), axis=-1)


def msle(t, p, eps=EPS):
    e = p.dtype.type(eps)
    return np.mean((np.log(np.maximum(p, e) + 1) - np.log(np.maximum(t, e) + 1)) ** 2, axis=-1)


def bce(t, p, from_logits=False, label_smoothing=0.0, eps=EPS):
    if label_smoothing:
        t = t * (1 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        x = p
        return np.mean(np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x))), axis=-1)
    c = _clip(p, eps, 1.0 - eps)
    return np.mean(-(t * np.log(c) + (1 - t) * np.log(1 - c)), axis=-1)


def cce(t, p, from_logits=False, label_smoothing=0.0, eps=EPS):
    if label_smoothing:
        t = t * (1 - label_smoothing) + label_smoothing / t.shape[-1]
    if from_logits:
        return -np.sum(t * special.log_softmax(p, axis=-1), axis=-1)
    q = p / np.sum(p, axis=-1, keepdims=True)
    q = _clip(q, eps, 1.0 - eps)
    return -np.sum(t * np.log(q), axis=-1)


def scce(labels, p, from_logits=False, ignore_class=None, eps=EPS):
    labels = np.asarray(labels)
    if labels.ndim == p.ndim and labels.shape[-1] == 1:
        labels = labels[..., 0]
    lab = labels.astype(np.int64)
    valid = np.ones(lab.shape, bool) if ignore_class is None else lab != ignore_class
    safe = np.where(valid, lab, 0)
    if from_logits:
        logp = special.log_softmax(p, axis=-1)
    else:
        # logits = log(clip(p)); the crossentropy of their softmax
        logp = special.log_softmax(np.log(_clip(p, eps, 1.0 - eps)), axis=-1)
    out = -np.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]
    return np.where(valid, out, 0.0)


def hinge(t, p):
    if np.all((t == 0) | (t == 1)):
        t = 2 * t - 1
    return np.mean(np.maximum(1 - t * p, 0), axis=-1)


def squared_hinge(t, p):
    if np.all((t == 0) | (t == 1)):
        t = 2 * t - 1
    return np.mean(np.maximum(1 - t * p, 0) ** 2, axis=-1)


def categorical_hinge(t, p):
    pos = np.sum(t * p, axis=-1)
    neg = np.max((1 - t) * p, axis=-1)
    return np.maximum(neg - pos + 1, 0)


def huber(t, p, delta=1.0):
    e = p - t
    a = np.abs(e)
    return np.mean(np.where(a <= delta, 0.5 * e ** 2, delta * a - 0.5 * delta ** 2), axis=-1)


def log_cosh(t, p):
    x = p - t
    return np.mean(x + np.logaddexp(0, -2 * x) - np.log(2.0), axis=-1)


def poisson(t, p, eps=EPS):
    return np.mean(p - t * np.log(p + p.dtype.type(eps)), axis=-1)


def kld(t, p, eps=EPS):
    t = _clip(t, eps, 1)
    p = _clip(p, eps, 1)
    return np.sum(t * np.log(t / p), axis=-1)


def cosine(t, p, eps=EPS):
    def norm(x):
        inv = 1 / np.sqrt(np.sum(x * x, axis=-1, keepdims=True))
        return x * np.minimum(inv, 1 / x.dtype.type(eps))
    return -np.sum(norm(t) * norm(p), axis=-1)


PER_SAMPLE = {
    "mean_squared_error": mse, "mean_absolute_error": mae,
    "mean_absolute_percentage_error": mape, "mean_squared_logarithmic_error": msle,
    "binary_crossentropy": bce, "categorical_crossentropy": cce,
    "sparse_categorical_crossentropy": scce, "hinge": hinge, "squared_hinge": squared_hinge,
    "categorical_hinge": categorical_hinge, "huber": huber, "log_cosh": log_cosh,
    "poisson": poisson, "kl_divergence": kld, "cosine_similarity": cosine,
}


def reduce(values, sample_weight=None, reduction="sum_over_batch_size", n_valid=None):
    """Weighting and reduction of per-sample values (sample_weight has values' shape)."""
    v = values if sample_weight is None else values * sample_weight
    if reduction in (None, "none"):
        return v
    total = np.sum(v)
    if reduction == "sum":
        return total
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        s = np.sum(sample_weight)
        return total / s if s else 0.0
    n = values.size if n_valid is None else n_valid
    return total / n if n else 0.0


def numeric_grad(f, p, h=1e-6):
    """Central differences of the scalar f at p (float64)."""
    p = np.array(p, dtype=np.float64)
    g = np.zeros_like(p)
    flat, gf = p.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = f(p)
        flat[i] = old - h
        fm = f(p)
        flat[i] = old
        gf[i] = (fp - fm) / (2 * h)
    return g
