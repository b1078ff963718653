"""Custom layers and a custom loss written against the Keras API with ``ops`` only,
shared by tools/gen_custom_layer_reference.py (run with Keras) and the fastnet tests.

``make(keras, ops)`` returns the classes and functions bound to that library, so the
same source defines them for Keras and for fastnet.
"""


def make(keras, ops):
    class Linear(keras.layers.Layer):
        def __init__(self, units=32, **kwargs):
            super().__init__(**kwargs)
            self.units = units

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="random_normal",
                                     trainable=True)
            self.b = self.add_weight(shape=(self.units,), initializer="zeros", trainable=True)

        def call(self, inputs):
            return ops.matmul(inputs, self.w) + self.b

    class MyLayerNorm(keras.layers.Layer):
        def __init__(self, epsilon=1e-3, **kwargs):
            super().__init__(**kwargs)
            self.epsilon = epsilon

        def build(self, input_shape):
            self.gamma = self.add_weight(shape=input_shape[-1:], initializer="ones")
            self.beta = self.add_weight(shape=input_shape[-1:], initializer="zeros")

        def call(self, x):
            mean, var = ops.moments(x, axes=[-1], keepdims=True)
            return (x - mean) * ops.rsqrt(var + self.epsilon) * self.gamma + self.beta

    def log_cosh_error(y_true, y_pred):
        d = y_pred - y_true
        return ops.mean(d + ops.softplus(-2.0 * d) - 0.6931471805599453, axis=-1)

    def build_model():
        return keras.Sequential([keras.Input((6,)), Linear(8), MyLayerNorm(), keras.layers.Activation("gelu"),
                                 Linear(2)])

    def forward(params, x):
        """The model as a function of its weights (Linear w, b; LayerNorm gamma, beta; Linear w, b)."""
        w1, b1, g, be, w2, b2 = params
        h = ops.matmul(x, w1) + b1
        mean, var = ops.moments(h, axes=[-1], keepdims=True)
        h = (h - mean) * ops.rsqrt(var + 1e-3) * g + be
        h = ops.gelu(h, approximate=False)
        return ops.matmul(h, w2) + b2

    return Linear, MyLayerNorm, log_cosh_error, build_model, forward
