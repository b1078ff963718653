"""The benchmark workloads, each defined once for fastnet and once for PyTorch.

A workload's ``fastnet()`` and ``torch()`` return a callable that runs one epoch
(or one predict pass) and returns the number of steps it took, so the caller can
report time per step. Hyperparameters are matched (Keras's defaults spelled out
for PyTorch, whose defaults differ).
"""
import numpy as np

WORKLOADS = {}


def workload(name, target, unit="train step"):
    def deco(cls):
        cls.name, cls.target, cls.unit = name, target, unit
        WORKLOADS[name] = cls()
        return cls
    return deco


def _torch_fit(model, loss_fn, opt, x, y, batch_size):
    import torch

    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    n = len(xt)

    def epoch():
        perm = torch.randperm(n)
        steps = 0
        for lo in range(0, n, batch_size):
            idx = perm[lo:lo + batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            steps += 1
        return steps
    model.train()
    return epoch


def _fastnet_fit(model, x, y, batch_size):
    steps = -(-len(x) // batch_size)

    def epoch():
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
        return steps
    return epoch


def blobs(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(-1, 1, (n // 2, 3)), rng.normal(1, 1, (n - n // 2, 3))]).astype(np.float32)
    y = np.concatenate([np.zeros(n // 2), np.ones(n - n // 2)]).astype(np.float32)
    return x, y


def mnist_like(n=60000, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n).astype(np.int64)


@workload("seed_mlp", target=8.0)
class SeedMLP:
    """1000x3 blobs; Dense 4 tanh, 4 tanh, 1 sigmoid; rmsprop; binary_crossentropy; batch 32."""

    def fastnet(self):
        from fastnet.layers import Dense, Input
        from fastnet.models import Sequential

        x, y = blobs()
        m = Sequential([Input((3,)), Dense(4, activation="tanh"), Dense(4, activation="tanh"),
                        Dense(1, activation="sigmoid")])
        m.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
        return _fastnet_fit(m, x, y, 32)

    def torch(self):
        import torch
        from torch import nn

        x, y = blobs()
        m = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 1))
        opt = torch.optim.RMSprop(m.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
        bce = nn.BCEWithLogitsLoss()
        return _torch_fit(m, lambda out, t: bce(out[:, 0], t), opt, x, y, 32)


@workload("mnist_mlp", target=2.5)
class MnistMLP:
    """60000 random 784-vectors; Dense 512 relu, Dropout 0.2, Dense 10 softmax; Adam; batch 128."""

    def fastnet(self):
        from fastnet.layers import Dense, Dropout, Input
        from fastnet.models import Sequential

        x, y = mnist_like()
        m = Sequential([Input((784,)), Dense(512, activation="relu"), Dropout(0.2),
                        Dense(10, activation="softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return _fastnet_fit(m, x, y, 128)

    def torch(self):
        import torch
        from torch import nn

        x, y = mnist_like()
        m = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.2), nn.Linear(512, 10))
        opt = torch.optim.Adam(m.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
        return _torch_fit(m, nn.CrossEntropyLoss(), opt, x, y, 128)


@workload("mnist_mlp_bn", target=2.0)
class MnistMLPBN:
    """Dense 256, BN, relu, Dense 256, BN, relu, Dense 10 softmax; Adam; batch 128."""

    def fastnet(self):
        from fastnet.layers import Activation, BatchNormalization, Dense, Input
        from fastnet.models import Sequential

        x, y = mnist_like()
        m = Sequential([Input((784,)), Dense(256), BatchNormalization(), Activation("relu"),
                        Dense(256), BatchNormalization(), Activation("relu"),
                        Dense(10, activation="softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return _fastnet_fit(m, x, y, 128)

    def torch(self):
        import torch
        from torch import nn

        x, y = mnist_like()
        m = nn.Sequential(nn.Linear(784, 256), nn.BatchNorm1d(256, eps=1e-3, momentum=0.01), nn.ReLU(),
                          nn.Linear(256, 256), nn.BatchNorm1d(256, eps=1e-3, momentum=0.01), nn.ReLU(),
                          nn.Linear(256, 10))
        opt = torch.optim.Adam(m.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
        return _torch_fit(m, nn.CrossEntropyLoss(), opt, x, y, 128)


@workload("mnist_mlp_predict", target=1.0, unit="predict of 60000 rows")
class MnistMLPPredict:
    """predict on 60000 rows of the MNIST MLP, batch 256 (PyTorch under no_grad)."""

    def fastnet(self):
        m_fit = MnistMLP().fastnet  # same architecture
        from fastnet.layers import Dense, Dropout, Input
        from fastnet.models import Sequential

        x, _ = mnist_like()
        m = Sequential([Input((784,)), Dense(512, activation="relu"), Dropout(0.2),
                        Dense(10, activation="softmax")])
        del m_fit

        def run():
            m.predict(x, batch_size=256, verbose=0)
            return 1
        return run

    def torch(self):
        import torch
        from torch import nn

        x, _ = mnist_like()
        m = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.2), nn.Linear(512, 10),
                          nn.Softmax(dim=1))
        m.eval()
        xt = torch.from_numpy(x)

        def run():
            with torch.no_grad():
                out = [m(xt[lo:lo + 256]) for lo in range(0, len(xt), 256)]
                torch.cat(out).numpy()
            return 1
        return run
