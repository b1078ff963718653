"""asv benchmarks: per-batch cost of losses (value and gradient) and metric updates.

Each benchmark is one training-step call on a typical batch; run with
``asv run`` from asv_benchmarks/, or import this module and call the methods.
"""
import numpy as np

from fastnet import losses, metrics

SHAPES = [(32, 1), (128, 10), (256, 1000)]


def _targets(name, shape, rng):
    n, c = shape
    if name == "sparse_categorical_crossentropy":
        return rng.integers(0, c, n)
    if name == "categorical_crossentropy":
        return np.eye(c, dtype=np.float32)[rng.integers(0, c, n)]
    if name == "binary_crossentropy":
        return rng.integers(0, 2, shape).astype(np.float32)
    return rng.normal(size=shape).astype(np.float32)


def _probs(name, shape, rng):
    x = rng.normal(size=shape).astype(np.float32)
    if name in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
        e = np.exp(x - x.max(-1, keepdims=True))
        return x, (e / e.sum(-1, keepdims=True)).astype(np.float32)
    return x, (1 / (1 + np.exp(-x))).astype(np.float32)


class _LossCase:
    """One batch of targets, logits and probabilities for a loss given by name."""

    param_names = ["loss", "shape"]

    def setup(self, name, shape):
        rng = np.random.default_rng(0)
        self.loss = losses.get(name)
        self.y = _targets(name, shape, rng)
        self.logits, self.p = _probs(name, shape, rng)


class LossValueAndGrad(_LossCase):
    """loss.value_and_grad(y_true, y_pred) on one batch."""

    params = (["mean_squared_error", "mean_absolute_error", "binary_crossentropy", "categorical_crossentropy",
               "sparse_categorical_crossentropy", "huber"], SHAPES)

    def setup(self, name, shape):
        super().setup(name, shape)
        self.out = np.empty(shape, np.float32)

    def time_value_and_grad(self, name, shape):
        self.loss.value_and_grad(self.y, self.p)

    def time_value_and_grad_out(self, name, shape):
        self.loss.value_and_grad(self.y, self.p, out=self.out)

    def time_call(self, name, shape):
        self.loss(self.y, self.p)


class LossFromLogits(_LossCase):
    """The crossentropies fused with the model's last sigmoid/softmax."""

    params = (["binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy"], SHAPES)

    def time_from_logits(self, name, shape):
        self.loss.value_and_grad_from_logits(self.y, self.logits)

    def time_from_logits_and_probs(self, name, shape):
        self.loss.value_and_grad_from_logits(self.y, self.logits, probs=self.p)


class MetricUpdate:
    """metric.update_state(y_true, y_pred) on one batch."""

    params = (["binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
               "top_k_categorical_accuracy", "mae", "AUC", "Precision"], [(32, 1), (128, 10)])
    param_names = ["metric", "shape"]

    def setup(self, name, shape):
        rng = np.random.default_rng(0)
        n, c = shape
        self.m = metrics.get(name)
        self.p = rng.uniform(size=shape).astype(np.float32)
        if name == "sparse_categorical_accuracy":
            self.y = rng.integers(0, c, n)
        elif name in ("categorical_accuracy", "top_k_categorical_accuracy"):
            self.y = np.eye(c, dtype=np.float32)[rng.integers(0, c, n)]
        else:
            self.y = rng.integers(0, 2, shape).astype(np.float32)

    def time_update_state(self, name, shape):
        self.m.update_state(self.y, self.p)
