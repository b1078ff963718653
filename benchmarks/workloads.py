"""The benchmark workloads, each written once in Keras's API and once for PyTorch.

A workload's ``keras_style(K)`` builds and compiles its model with ``K`` being
``fastnet`` or ``keras`` (the same code runs on both: ``import fastnet as
keras``), and ``torch()`` builds the PyTorch equivalent. Each returns a callable
that runs one epoch (or one predict pass) and returns the number of steps it
took, so the caller can report time per step. Hyperparameters are matched
(Keras's defaults spelled out for PyTorch, whose defaults differ).
"""
import numpy as np

WORKLOADS = {}
LIBRARIES = ("fastnet", "torch", "keras")


def workload(name, target=None, unit="train step"):
    def deco(cls):
        cls.name, cls.target, cls.unit = name, target, unit
        WORKLOADS[name] = cls()
        return cls
    return deco


class Workload:
    """Base: ``fastnet()`` and ``keras()`` run the same Keras-style code."""

    def fastnet(self):
        import fastnet

        return self.keras_style(fastnet)

    def keras(self):
        import keras

        return self.keras_style(keras)

    def runner(self, lib):
        return getattr(self, lib)()

    @property
    def description(self):
        doc = (type(self).__doc__ or "").strip().split("\n\n")[0]
        return " ".join(line.strip() for line in doc.splitlines())


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


def _keras_fit(model, x, y, batch_size):
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


# ----------------------------------------------------------------------------- dense

@workload("seed_mlp", target=8.0)
class SeedMLP(Workload):
    """1000x3 blobs; Dense 4 tanh, 4 tanh, 1 sigmoid; rmsprop; binary_crossentropy; batch 32."""

    def keras_style(self, K):
        x, y = blobs()
        m = K.Sequential([K.Input((3,)), K.layers.Dense(4, activation="tanh"),
                          K.layers.Dense(4, activation="tanh"), K.layers.Dense(1, activation="sigmoid")])
        m.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
        return _keras_fit(m, x, y, 32)

    def torch(self):
        import torch
        from torch import nn

        x, y = blobs()
        m = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 1))
        opt = torch.optim.RMSprop(m.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
        bce = nn.BCEWithLogitsLoss()
        return _torch_fit(m, lambda out, t: bce(out[:, 0], t), opt, x, y, 32)


@workload("mnist_mlp", target=2.5)
class MnistMLP(Workload):
    """60000 random 784-vectors; Dense 512 relu, Dropout 0.2, Dense 10 softmax; Adam; batch 128."""

    def keras_style(self, K):
        x, y = mnist_like()
        m = K.Sequential([K.Input((784,)), K.layers.Dense(512, activation="relu"),
                          K.layers.Dropout(0.2), K.layers.Dense(10, activation="softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return _keras_fit(m, x, y, 128)

    def torch(self):
        import torch
        from torch import nn

        x, y = mnist_like()
        m = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.2), nn.Linear(512, 10))
        opt = torch.optim.Adam(m.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
        return _torch_fit(m, nn.CrossEntropyLoss(), opt, x, y, 128)


@workload("mnist_mlp_bn", target=2.0)
class MnistMLPBN(Workload):
    """Dense 256, BN, relu, Dense 256, BN, relu, Dense 10 softmax; Adam; batch 128."""

    def keras_style(self, K):
        x, y = mnist_like()
        L = K.layers
        m = K.Sequential([K.Input((784,)), L.Dense(256), L.BatchNormalization(), L.Activation("relu"),
                          L.Dense(256), L.BatchNormalization(), L.Activation("relu"),
                          L.Dense(10, activation="softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return _keras_fit(m, x, y, 128)

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
class MnistMLPPredict(Workload):
    """predict on 60000 rows of the MNIST MLP, batch 256 (PyTorch under no_grad)."""

    def keras_style(self, K):
        x, _ = mnist_like()
        m = K.Sequential([K.Input((784,)), K.layers.Dense(512, activation="relu"),
                          K.layers.Dropout(0.2), K.layers.Dense(10, activation="softmax")])

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


# ----------------------------------------------------------------------------- convolution
# The models of benchmarks/compare_conv.py (which also times the layer stacks alone);
# 8 batches per epoch of fixed random data.

def _images(n, shape, seed=0):
    return np.random.default_rng(seed).random((n,) + shape, dtype=np.float32)


@workload("mnist_cnn", target=2.3)
class MnistCNN(Workload):
    """Keras's MNIST convnet: Conv2D 32 3x3 relu, MaxPool 2, Conv2D 64 3x3 relu, MaxPool 2,
    Flatten, Dropout 0.5, Dense 10 softmax; Adam; batch 128."""

    def data(self):
        rng = np.random.default_rng(0)
        return _images(1024, (28, 28, 1)), rng.integers(0, 10, 1024).astype(np.int64)

    def keras_style(self, K):
        x, y = self.data()
        L = K.layers
        m = K.Sequential([K.Input((28, 28, 1)), L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(2),
                          L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(2), L.Flatten(),
                          L.Dropout(0.5), L.Dense(10, activation="softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return _keras_fit(m, x, y, 128)

    def torch(self):
        import torch
        from torch import nn

        x, y = self.data()
        m = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3),
                          nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.5), nn.Linear(1600, 10))
        opt = torch.optim.Adam(m.parameters(), lr=1e-3, eps=1e-7)
        return _torch_fit(m, nn.CrossEntropyLoss(), opt, np.ascontiguousarray(x.transpose(0, 3, 1, 2)),
                          y, 128)


@workload("resnet", target=2.0)
class ResNet(Workload):
    """Residual network on 32x32x3 images: Conv2D 16 stem with BN and ReLU, three residual
    blocks of 16, 32 (stride 2) and 64 (stride 2) channels (two 3x3 Conv2D + BN each, a
    1x1 strided projection where the shape changes, Add, ReLU), global average pooling,
    Dense 10 softmax; Adam; batch 64."""

    def data(self):
        rng = np.random.default_rng(0)
        return _images(512, (32, 32, 3)), rng.integers(0, 10, 512).astype(np.int64)

    def keras_style(self, K):
        x, y = self.data()
        L = K.layers

        def block(t, filters, stride):
            h = L.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(t)
            h = L.ReLU()(L.BatchNormalization()(h))
            h = L.BatchNormalization()(L.Conv2D(filters, 3, padding="same", use_bias=False)(h))
            if stride != 1 or t.shape[-1] != filters:
                t = L.BatchNormalization()(L.Conv2D(filters, 1, strides=stride, use_bias=False)(t))
            return L.ReLU()(L.add([h, t]))

        inp = K.Input((32, 32, 3))
        t = L.ReLU()(L.BatchNormalization()(L.Conv2D(16, 3, padding="same", use_bias=False)(inp)))
        for filters, stride in ((16, 1), (32, 2), (64, 2)):
            t = block(t, filters, stride)
        out = L.Dense(10, activation="softmax")(L.GlobalAveragePooling2D()(t))
        m = K.Model(inp, out)
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return _keras_fit(m, x, y, 64)

    def torch(self):
        import torch
        from torch import nn

        def bn(c):  # Keras's BatchNormalization defaults: momentum 0.99, epsilon 1e-3
            return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)

        class Block(nn.Module):
            def __init__(self, cin, cout, stride):
                super().__init__()
                self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
                self.b1 = bn(cout)
                self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
                self.b2 = bn(cout)
                self.proj = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), bn(cout))
                             if stride != 1 or cin != cout else nn.Identity())

            def forward(self, t):
                h = torch.relu(self.b1(self.c1(t)))
                return torch.relu(self.b2(self.c2(h)) + self.proj(t))

        x, y = self.data()
        m = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), bn(16), nn.ReLU(),
                          Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
        opt = torch.optim.Adam(m.parameters(), lr=1e-3, eps=1e-7)
        return _torch_fit(m, nn.CrossEntropyLoss(), opt, np.ascontiguousarray(x.transpose(0, 3, 1, 2)),
                          y, 64)


@workload("conv1d", target=2.3)
class Conv1DNet(Workload):
    """Input (100, 16): Conv1D 64 k5 relu valid, Conv1D 64 k5 relu same, Flatten, Dense 1
    sigmoid; rmsprop; batch 64."""

    def data(self):
        rng = np.random.default_rng(0)
        return _images(512, (100, 16)), rng.integers(0, 2, 512).astype(np.float32)

    def keras_style(self, K):
        x, y = self.data()
        L = K.layers
        m = K.Sequential([K.Input((100, 16)), L.Conv1D(64, 5, activation="relu"),
                          L.Conv1D(64, 5, activation="relu", padding="same"), L.Flatten(),
                          L.Dense(1, activation="sigmoid")])
        m.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
        return _keras_fit(m, x, y, 64)

    def torch(self):
        import torch
        from torch import nn

        x, y = self.data()
        m = nn.Sequential(nn.Conv1d(16, 64, 5), nn.ReLU(), nn.Conv1d(64, 64, 5, padding="same"),
                          nn.ReLU(), nn.Flatten(), nn.Linear(64 * 96, 1))
        opt = torch.optim.RMSprop(m.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
        bce = nn.BCEWithLogitsLoss()
        return _torch_fit(m, lambda out, t: bce(out[:, 0], t), opt,
                          np.ascontiguousarray(x.transpose(0, 2, 1)), y, 64)


@workload("decoder", target=1.6)
class Decoder(Workload):
    """64 inputs: Dense 7*7*32 relu, Reshape, Conv2DTranspose 32 k3 s2 same relu,
    Conv2DTranspose 1 k3 s2 same sigmoid; Adam; mse; batch 64."""

    def data(self):
        return _images(512, (64,)), _images(512, (28, 28, 1), seed=1)

    def keras_style(self, K):
        x, y = self.data()
        L = K.layers
        m = K.Sequential([K.Input((64,)), L.Dense(7 * 7 * 32, activation="relu"), L.Reshape((7, 7, 32)),
                          L.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu"),
                          L.Conv2DTranspose(1, 3, strides=2, padding="same", activation="sigmoid")])
        m.compile(optimizer="adam", loss="mse")
        return _keras_fit(m, x, y, 64)

    def torch(self):
        import torch
        from torch import nn

        x, y = self.data()
        m = nn.Sequential(nn.Linear(64, 7 * 7 * 32), nn.ReLU(), nn.Unflatten(1, (32, 7, 7)),
                          nn.ConvTranspose2d(32, 32, 3, 2, padding=1, output_padding=1), nn.ReLU(),
                          nn.ConvTranspose2d(32, 1, 3, 2, padding=1, output_padding=1), nn.Sigmoid())
        opt = torch.optim.Adam(m.parameters(), lr=1e-3, eps=1e-7)
        return _torch_fit(m, nn.MSELoss(), opt, x, np.ascontiguousarray(y.transpose(0, 3, 1, 2)), 64)


@workload("separable_cnn", target=1.5)
class SeparableCNN(Workload):
    """32x32x3 images: Conv2D 32 3x3 same, BN, relu; three blocks of SeparableConv2D
    (64, 128, 256) 3x3 same, BN, relu, MaxPooling2D 2; GlobalAveragePooling2D; Dense 10
    softmax; Adam; batch 64."""

    FILTERS = (64, 128, 256)

    def data(self):
        rng = np.random.default_rng(0)
        return _images(512, (32, 32, 3)), rng.integers(0, 10, 512).astype(np.int64)

    def keras_style(self, K):
        x, y = self.data()
        L = K.layers
        stack = [K.Input((32, 32, 3)), L.Conv2D(32, 3, padding="same", use_bias=False),
                 L.BatchNormalization(), L.Activation("relu")]
        for f in self.FILTERS:
            stack += [L.SeparableConv2D(f, 3, padding="same", use_bias=False), L.BatchNormalization(),
                      L.Activation("relu"), L.MaxPooling2D(2)]
        stack += [L.GlobalAveragePooling2D(), L.Dense(10, activation="softmax")]
        m = K.Sequential(stack)
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return _keras_fit(m, x, y, 64)

    def torch(self):
        import torch
        from torch import nn

        x, y = self.data()
        mods = [nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32, eps=1e-3, momentum=0.01),
                nn.ReLU()]
        c = 32
        for f in self.FILTERS:
            # Keras's SeparableConv2D: depthwise (groups = channels), then a 1x1 convolution.
            mods += [nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False), nn.Conv2d(c, f, 1, bias=False),
                     nn.BatchNorm2d(f, eps=1e-3, momentum=0.01), nn.ReLU(), nn.MaxPool2d(2)]
            c = f
        mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 10)]
        m = nn.Sequential(*mods)
        opt = torch.optim.Adam(m.parameters(), lr=1e-3, eps=1e-7)
        return _torch_fit(m, nn.CrossEntropyLoss(), opt, np.ascontiguousarray(x.transpose(0, 3, 1, 2)), y, 64)


# ----------------------------------------------------------------------------- recurrent
# The setting of benchmarks/compare_recurrent.py: 32 steps x 32 features, 128 units,
# Dense(10, softmax), Adam, sparse categorical cross-entropy, batch 64.

class _Recurrent(Workload):
    cell = None

    def data(self):
        rng = np.random.default_rng(0)
        return (rng.standard_normal((1280, 32, 32)).astype(np.float32),
                rng.integers(0, 10, 1280).astype(np.int64))

    def keras_style(self, K):
        x, y = self.data()
        m = K.Sequential([K.Input((32, 32)), getattr(K.layers, self.cell)(128),
                          K.layers.Dense(10, activation="softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return _keras_fit(m, x, y, 64)

    def torch(self):
        import torch
        from torch import nn

        x, y = self.data()
        rnn = {"LSTM": nn.LSTM, "GRU": nn.GRU, "SimpleRNN": nn.RNN}[self.cell](32, 128, batch_first=True)
        fc = nn.Linear(128, 10)

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn, self.fc = rnn, fc

            def forward(self, inputs):
                return self.fc(self.rnn(inputs)[0][:, -1])

        m = Net()
        opt = torch.optim.Adam(m.parameters(), lr=1e-3, eps=1e-7)
        return _torch_fit(m, nn.CrossEntropyLoss(), opt, x, y, 64)


@workload("lstm", target=1.5)
class LSTMNet(_Recurrent):
    """LSTM 128 on 32 steps x 32 features, Dense 10 softmax; Adam; batch 64."""

    cell = "LSTM"


@workload("gru", target=1.6)
class GRUNet(_Recurrent):
    """GRU 128 on 32 steps x 32 features, Dense 10 softmax; Adam; batch 64."""

    cell = "GRU"


@workload("simple_rnn", target=2.5)
class SimpleRNNNet(_Recurrent):
    """SimpleRNN 128 on 32 steps x 32 features, Dense 10 softmax; Adam; batch 64."""

    cell = "SimpleRNN"


class _RecurrentPredict(Workload):
    """Predict on 6400 sequences of the recurrent model, in batches of 32 (Keras's default)."""

    cell = None

    def data(self):
        return np.random.default_rng(1).standard_normal((6400, 32, 32)).astype(np.float32)

    def keras_style(self, K):
        x = self.data()
        m = K.Sequential([K.Input((32, 32)), getattr(K.layers, self.cell)(128),
                          K.layers.Dense(10, activation="softmax")])

        def run():
            m.predict(x, batch_size=32, verbose=0)
            return 1
        return run

    def torch(self):
        import torch
        from torch import nn

        rnn = {"LSTM": nn.LSTM, "GRU": nn.GRU, "SimpleRNN": nn.RNN}[self.cell](32, 128, batch_first=True)
        fc = nn.Linear(128, 10)
        rnn.eval()
        xt = torch.from_numpy(self.data())

        def run():
            with torch.no_grad():
                out = [torch.softmax(fc(rnn(xt[lo:lo + 32])[0][:, -1]), dim=1)
                       for lo in range(0, len(xt), 32)]
                torch.cat(out).numpy()
            return 1
        return run


@workload("lstm_predict", target=1.0, unit="predict of 6400 sequences")
class LSTMPredict(_RecurrentPredict):
    """predict on 6400 sequences of the LSTM model, batch 32 (PyTorch under no_grad)."""

    cell = "LSTM"


@workload("gru_predict", target=1.0, unit="predict of 6400 sequences")
class GRUPredict(_RecurrentPredict):
    """predict on 6400 sequences of the GRU model, batch 32 (PyTorch under no_grad)."""

    cell = "GRU"


# ----------------------------------------------------------------------------- attention
# Keras's "text classification with transformer" example at the sizes.

@workload("transformer_text", target=1.5)
class TransformerText(Workload):
    """Token + position Embedding (vocabulary 20000, sequence 200, 32), one transformer
    block (MultiHeadAttention 2 heads of key_dim 32, Dropout 0.1, Add + LayerNormalization,
    feed-forward Dense 32 relu + Dense 32, Dropout 0.1, Add + LayerNormalization),
    GlobalAveragePooling1D, Dropout 0.1, Dense 20 relu, Dropout 0.1, Dense 2 softmax;
    Adam; batch 32. Functional API: token ids and their positions are the two inputs."""

    vocab, seq, embed, heads, ff, batch = 20000, 200, 32, 2, 32, 32

    def data(self, n=1024):
        rng = np.random.default_rng(0)
        tokens = rng.integers(0, self.vocab, (n, self.seq)).astype(np.int32)
        positions = np.broadcast_to(np.arange(self.seq, dtype=np.int32), (n, self.seq)).copy()
        return tokens, positions, rng.integers(0, 2, n).astype(np.int64)

    def keras_style(self, K):
        tokens, positions, y = self.data()
        L = K.layers
        tok_in = K.Input((self.seq,), dtype="int32")
        pos_in = K.Input((self.seq,), dtype="int32")
        x = L.Add()([L.Embedding(self.vocab, self.embed)(tok_in), L.Embedding(self.seq, self.embed)(pos_in)])
        a = L.MultiHeadAttention(num_heads=self.heads, key_dim=self.embed)(x, x)
        x = L.LayerNormalization(epsilon=1e-6)(L.Add()([x, L.Dropout(0.1)(a)]))
        f = L.Dense(self.embed)(L.Dense(self.ff, activation="relu")(x))
        x = L.LayerNormalization(epsilon=1e-6)(L.Add()([x, L.Dropout(0.1)(f)]))
        x = L.Dropout(0.1)(L.GlobalAveragePooling1D()(x))
        x = L.Dropout(0.1)(L.Dense(20, activation="relu")(x))
        m = K.Model([tok_in, pos_in], L.Dense(2, activation="softmax")(x))
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        steps = -(-len(y) // self.batch)

        def epoch():
            m.fit([tokens, positions], y, batch_size=self.batch, epochs=1, verbose=0)
            return steps
        return epoch

    def torch(self):
        import torch
        from torch import nn
        from torch.nn import functional as F

        tokens, _, y = self.data()
        E, H, S = self.embed, self.heads, self.seq

        class Net(nn.Module):
            # Keras's MultiHeadAttention with key_dim = E: each head has size E, so the
            # projections are E -> H * E and back (torch's nn.MultiheadAttention would split E).
            def __init__(self, vocab, ff):
                super().__init__()
                self.tok, self.pos = nn.Embedding(vocab, E), nn.Embedding(S, E)
                self.q, self.k, self.v = (nn.Linear(E, H * E) for _ in range(3))
                self.o = nn.Linear(H * E, E)
                self.ln1, self.ln2 = nn.LayerNorm(E, eps=1e-6), nn.LayerNorm(E, eps=1e-6)
                self.ff1, self.ff2 = nn.Linear(E, ff), nn.Linear(ff, E)
                self.fc1, self.fc2 = nn.Linear(E, 20), nn.Linear(20, 2)
                self.drop = nn.Dropout(0.1)
                self.register_buffer("positions", torch.arange(S))

            def forward(self, ids):
                x = self.tok(ids) + self.pos(self.positions)
                b = x.shape[0]

                def heads(t):
                    return t.view(b, S, H, E).transpose(1, 2)
                a = F.scaled_dot_product_attention(heads(self.q(x)), heads(self.k(x)), heads(self.v(x)))
                a = self.o(a.transpose(1, 2).reshape(b, S, H * E))
                x = self.ln1(x + self.drop(a))
                x = self.ln2(x + self.drop(self.ff2(F.relu(self.ff1(x)))))
                x = self.drop(x.mean(dim=1))
                return self.fc2(self.drop(F.relu(self.fc1(x))))

        m = Net(self.vocab, self.ff)
        opt = torch.optim.Adam(m.parameters(), lr=1e-3, eps=1e-7)
        return _torch_fit(m, nn.CrossEntropyLoss(), opt, tokens.astype(np.int64), y, self.batch)
