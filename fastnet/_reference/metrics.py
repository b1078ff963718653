"""Numpy twins of the metric kernels: accuracy counts and confusion-matrix counts."""
import numpy as np


def binary_matches(t, p, threshold=0.5):
    """Per-row fraction of positions where (p > threshold) == t (rows of 2-D arrays)."""
    return np.mean(((p > p.dtype.type(threshold)).astype(t.dtype) == t), axis=-1)


def categorical_matches(t, p):
    return (np.argmax(t, -1) == np.argmax(p, -1)).astype(np.float64)


def sparse_matches(labels, p):
    return (np.argmax(p, -1).astype(np.float64) == np.asarray(labels, np.float64)).astype(np.float64)


def top_k_matches(labels, p, k):
    labels = np.asarray(labels, np.int64)
    out = np.zeros(len(labels))
    for i, (y, row) in enumerate(zip(labels, p)):
        if 0 <= y < len(row) and np.isfinite(row[y]):
            out[i] = np.sum(row > row[y]) < k
    return out


def weighted_mean(values, w=None):
    """(total, count) as a Mean metric accumulates per-row values."""
    if w is None:
        return float(np.sum(values)), float(len(values))
    return float(np.sum(values * w)), float(np.sum(w))


def confusion(t, p, thresholds, w=None):
    """(tp, fp, tn, fn), each of length len(thresholds): prediction positive when strictly
    above the threshold, label positive when nonzero."""
    p = np.asarray(p)
    w = np.ones(p.size) if w is None else np.broadcast_to(w, p.shape).reshape(-1)
    t = np.asarray(t).reshape(-1) != 0
    p = p.reshape(-1)
    out = np.zeros((4, len(thresholds)))
    for j, th in enumerate(thresholds):
        pos = p > p.dtype.type(th)
        out[0, j] = np.sum(w * (pos & t))
        out[1, j] = np.sum(w * (pos & ~t))
        out[2, j] = np.sum(w * (~pos & ~t))
        out[3, j] = np.sum(w * (~pos & t))
    return out


def auc_from_counts(tp, fp, tn, fn, curve="ROC", summation="interpolation"):
    """Riemann sum of the ROC or PR curve through the thresholds' (x, y) points."""
    def div(a, b):
        return np.where(b != 0, a / np.where(b != 0, b, 1), 0.0)
    recall = div(tp, tp + fn)
    if curve == "ROC":
        x, y = div(fp, fp + tn), recall
    else:
        x, y = recall, div(tp, tp + fp)
    if summation == "interpolation":
        h = (y[:-1] + y[1:]) / 2
    elif summation == "minoring":
        h = np.minimum(y[:-1], y[1:])
    else:
        h = np.maximum(y[:-1], y[1:])
    return float(np.sum((x[:-1] - x[1:]) * h))
