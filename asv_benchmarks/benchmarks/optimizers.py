"""One optimizer step (fastnet.optimizers) on a packed model, and numpy's whole-array Adam.

Sizes: 41 parameters (a tiny MLP, where the per-call overhead is what counts) and
407,050 (the MNIST MLP 784-512-10).
"""
import numpy as np

SHAPES = {
    41: [(3, 8), (8,), (8, 1), (1,)],
    407050: [(784, 512), (512,), (512, 10), (10,)],
}
NAMES = ["sgd", "rmsprop", "adam", "adamw", "adagrad", "adadelta", "nadam", "adamax"]


def _set_threads(n_threads):
    import fastnet

    fastnet.config.set_num_threads(n_threads)


def _packed(size, seed=0):
    from fastnet import backend

    rng = np.random.default_rng(seed)
    variables = [backend.Variable((rng.standard_normal(s) * 0.05).astype(np.float32))
                 for s in SHAPES[size]]
    values, grads, offsets = backend.pack(variables, np.float32)
    grads[:] = (rng.standard_normal(grads.size) * 0.01).astype(np.float32)
    return variables, values, grads, offsets


class OptimizerStep:
    """``apply_flat``: one fused kernel call for every weight of the model."""

    timeout = 300
    repeat = (3, 20, 30.0)
    warmup_time = 0.2
    params = (NAMES, [41, 407050], [1, 2])
    param_names = ["optimizer", "size", "n_threads"]

    def setup(self, name, size, n_threads):
        from fastnet import optimizers

        _set_threads(n_threads)
        self.variables, self.values, self.grads, self.offsets = _packed(size)
        self.opt = optimizers.get(name)
        self.opt.build(self.variables)
        self.opt.apply_flat(self.values, self.grads, self.offsets)

    def time_step(self, name, size, n_threads):
        self.opt.apply_flat(self.values, self.grads, self.offsets)


class OptimizerStepClipped:
    """Adam with gradient clipping: per-variable norms, one global norm, or by value."""

    timeout = 300
    repeat = (3, 20, 30.0)
    warmup_time = 0.2
    params = (["clipnorm", "global_clipnorm", "clipvalue"], [41, 407050], [1, 2])
    param_names = ["clip", "size", "n_threads"]

    def setup(self, clip, size, n_threads):
        from fastnet import optimizers

        _set_threads(n_threads)
        self.variables, self.values, self.grads, self.offsets = _packed(size)
        self.opt = optimizers.Adam(**{clip: 1.0})
        self.opt.build(self.variables)

    def time_step(self, clip, size, n_threads):
        self.opt.apply_flat(self.values, self.grads, self.offsets)


class OptimizerApplyGradients:
    """Keras's ``apply_gradients`` path: one kernel call per variable."""

    timeout = 300
    repeat = (3, 20, 30.0)
    warmup_time = 0.2
    params = (["rmsprop", "adam"], [41, 407050])
    param_names = ["optimizer", "size"]

    def setup(self, name, size):
        from fastnet import optimizers

        _set_threads(1)
        self.variables, _, _, _ = _packed(size)
        self.pairs = [(v.grad.copy(), v) for v in self.variables]
        self.opt = optimizers.get(name)
        self.opt.build(self.variables)

    def time_apply_gradients(self, name, size):
        self.opt.apply_gradients(self.pairs)


class NumpyAdam:
    """The same Adam update written as whole-array numpy (preallocated temporaries)."""

    timeout = 300
    repeat = (3, 20, 30.0)
    warmup_time = 0.2
    params = [41, 407050]
    param_names = ["size"]

    def setup(self, size):
        _, values, grads, _ = _packed(size)
        self.w, self.g = values, grads
        self.m = np.zeros_like(values)
        self.v = np.zeros_like(values)
        self.tmp = np.empty_like(values)
        self.tmp2 = np.empty_like(values)
        self.t = 0

    def time_step(self, size):
        self.t += 1
        f = np.float32
        alpha = f(f(0.001) * np.sqrt(f(1) - f(0.999) ** f(self.t)) / (f(1) - f(0.9) ** f(self.t)))
        w, g, m, v, tmp, tmp2 = self.w, self.g, self.m, self.v, self.tmp, self.tmp2
        np.subtract(g, m, out=tmp)
        np.multiply(tmp, f(0.1), out=tmp)
        np.add(m, tmp, out=m)
        np.multiply(g, g, out=tmp)
        np.subtract(tmp, v, out=tmp)
        np.multiply(tmp, f(0.001), out=tmp)
        np.add(v, tmp, out=v)
        np.sqrt(v, out=tmp)
        np.add(tmp, f(1e-7), out=tmp)
        np.multiply(m, alpha, out=tmp2)
        np.divide(tmp2, tmp, out=tmp2)
        np.subtract(w, tmp2, out=w)


def _median_us(fn, number, repeats=15):
    import statistics
    import time

    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t) / number)
    return 1e6 * statistics.median(times), 1e6 * min(times)


def main():
    """Medians without asv: ``python asv_benchmarks/benchmarks/optimizers.py``."""
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    print(f"{'case':44s} {'median us':>10s} {'min us':>9s}")
    for size, number in ((41, 20000), (407050, 100)):
        for n_threads in ((1,) if size == 41 else (1, 2)):
            for name in (NAMES if size == 41 else ["sgd", "rmsprop", "adam", "nadam"]):
                b = OptimizerStep()
                b.setup(name, size, n_threads)
                med, low = _median_us(lambda: b.time_step(name, size, n_threads), number)
                print(f"{f'apply_flat {name} {size} params {n_threads} thr':44s} {med:10.2f} {low:9.2f}")
        for clip in ("clipnorm", "global_clipnorm") if size == 407050 else ():
            b = OptimizerStepClipped()
            b.setup(clip, size, 1)
            med, low = _median_us(lambda: b.time_step(clip, size, 1), number)
            print(f"{f'apply_flat adam+{clip} {size} 1 thr':44s} {med:10.2f} {low:9.2f}")
        b = OptimizerApplyGradients()
        b.setup("rmsprop", size)
        med, low = _median_us(lambda: b.time_apply_gradients("rmsprop", size), max(number // 10, 20))
        print(f"{f'apply_gradients rmsprop {size} params':44s} {med:10.2f} {low:9.2f}")
        b = NumpyAdam()
        b.setup(size)
        med, low = _median_us(lambda: b.time_step(size), max(number // 10, 20) if size == 41 else number)
        print(f"{f'numpy whole-array adam {size} params':44s} {med:10.2f} {low:9.2f}")


if __name__ == "__main__":
    main()
