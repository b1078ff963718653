"""The classic Keras Sequential tutorial, in fastnet.

Two Gaussian blobs of 1000 samples with 3 features, a 3-layer network, its
summary, training with a progress bar, evaluation, and the training-curve
figure written to the current directory.

    python -m fastnet.examples.quickstart [--epochs 10] [--out training_curves.png]
"""
import argparse
import os
import sys

import numpy as np


def make_data(n=1000, seed=0):
    """Two blobs in 3-D: class 0 around -1, class 1 around +1."""
    rng = np.random.default_rng(seed)
    half = n // 2
    x = np.concatenate([rng.normal(-1.0, 1.0, (half, 3)), rng.normal(1.0, 1.0, (n - half, 3))])
    y = np.concatenate([np.zeros(half), np.ones(n - half)])
    order = rng.permutation(n)
    return x[order].astype(np.float32), y[order].astype(np.float32)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--out", default="training_curves.png")
    ap.add_argument("--no-plot", action="store_true", help="skip the figure")
    args = ap.parse_args(argv)

    from fastnet.layers import Dense
    from fastnet.models import Sequential
    from fastnet.utils import set_random_seed

    set_random_seed(0)
    x_train, y_train = make_data()

    model = Sequential()
    model.add(Dense(4, activation="tanh", input_shape=(3,)))
    model.add(Dense(4, activation="tanh"))
    model.add(Dense(1, activation="sigmoid"))
    model.summary()
    model.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=1,
                        validation_split=0.2)
    loss, acc = model.evaluate(x_train, y_train, verbose=0)
    print(f"evaluate: loss {loss:.4f}, accuracy {acc:.4f}")

    if not args.no_plot:
        from fastnet.utils import plot_history

        try:
            plot_history(history, path=args.out)
        except ImportError as e:
            print(f"(no figure: {e})")
        else:
            print(f"training curves written to {os.path.abspath(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
