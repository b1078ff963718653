"""Numpy twin of the optimizer kernel (fastnet/_kernels/optim.pyx).

``step`` applies one update to a list of variables with whole-array numpy, in
the dtype of the weights, following the formulas of each algorithm as Keras
writes them: clip the gradients, decay the weights, then update each variable.
"""
import numpy as np

ALGORITHMS = ("sgd", "rmsprop", "adam", "adagrad", "adadelta", "adamax", "nadam")

# Slots each algorithm keeps per variable, in the kernel's row order.
SLOTS = {
    "sgd": ("momentum",),
    "rmsprop": ("velocity", "momentum", "average_gradient"),
    "adam": ("momentum", "velocity", "velocity_hat"),
    "adagrad": ("accumulator",),
    "adadelta": ("accumulated_grad", "accumulated_delta_var"),
    "adamax": ("momentum", "norm"),
    "nadam": ("momentum", "velocity"),
}


def clip_gradients(grads, clipnorm=None, clipvalue=None, global_clipnorm=None):
    """Clipped copies of grads (per-variable norm, global norm or value)."""
    out = []
    if clipnorm:
        for g in grads:
            c = g.dtype.type(clipnorm)
            norm = np.sqrt(np.sum(np.square(g, dtype=np.float64))).astype(g.dtype)
            out.append(g * (c / max(norm, c)))
        return out
    if global_clipnorm:
        dtype = grads[0].dtype.type
        total = sum(float(np.sum(np.square(g, dtype=np.float64))) for g in grads)
        norm = np.sqrt(dtype(total))
        c = dtype(global_clipnorm)
        one = dtype(1)
        scale = c * min(one / norm, one / c) if np.isfinite(norm) else dtype(np.nan)
        return [g * scale for g in grads]
    if clipvalue:
        return [np.clip(g, -clipvalue, clipvalue).astype(g.dtype) for g in grads]
    return [g.copy() for g in grads]


def step(name, weights, grads, slots, t, lr, state=None, weight_decay=None, decay_mask=None,
         clipnorm=None, clipvalue=None, global_clipnorm=None, momentum=0.0, nesterov=False,
         rho=0.9, epsilon=1e-7, centered=False, beta_1=0.9, beta_2=0.999, amsgrad=False):
    """One step of optimizer ``name`` on every variable, in place.

    Args:
        weights, grads: lists of arrays (same dtype).
        slots: dict slot name -> list of arrays (one per variable), as ``SLOTS`` names them.
        t: steps already taken. lr: learning rate.
        state: Nadam's running product of momentum factors (a 1-element array).
        decay_mask: per variable, whether weight decay applies (all by default).
    """
    dt = weights[0].dtype.type
    one = dt(1)
    grads = clip_gradients([np.asarray(g, dtype=weights[0].dtype) for g in grads],
                           clipnorm, clipvalue, global_clipnorm)
    lr_ = dt(lr)
    if weight_decay is not None:
        wd = dt(weight_decay)
        for i, w in enumerate(weights):
            if decay_mask is None or decay_mask[i]:
                w -= w * wd * lr_
    local_step = dt(t + 1)
    if name == "nadam":
        decay = dt(0.96)
        b1 = dt(beta_1)
        state[0] = state[0] * b1 * (one - dt(0.5) * decay ** local_step)
    for i, (w, g) in enumerate(zip(weights, grads)):
        s = {k: v[i] for k, v in slots.items()}
        if name == "sgd":
            if momentum:
                mom = dt(momentum)
                m = s["momentum"]
                m[...] = m * mom - g * lr_
                if nesterov:
                    w += m * mom - g * lr_
                else:
                    w += m
            else:
                w -= g * lr_
        elif name == "rmsprop":
            r = dt(rho)
            v = s["velocity"]
            v[...] = r * v + dt(1 - rho) * np.square(g)
            if centered:
                a = s["average_gradient"]
                a[...] = r * a + dt(1 - rho) * g
                denominator = v - np.square(a) + dt(epsilon)
            else:
                denominator = v + dt(epsilon)
            increment = (lr_ * g) / np.sqrt(denominator)
            if momentum:
                m = s["momentum"]
                m[...] = dt(momentum) * m + increment
                w -= m
            else:
                w -= increment
        elif name == "adam":
            b1p = dt(beta_1) ** local_step
            b2p = dt(beta_2) ** local_step
            alpha = lr_ * np.sqrt(one - b2p) / (one - b1p)
            m, v = s["momentum"], s["velocity"]
            m += (g - m) * dt(1 - beta_1)
            v += (np.square(g) - v) * dt(1 - beta_2)
            if amsgrad:
                vh = s["velocity_hat"]
                vh[...] = np.maximum(vh, v)
                v = vh
            w -= (m * alpha) / (np.sqrt(v) + dt(epsilon))
        elif name == "adagrad":
            acc = s["accumulator"]
            acc += np.square(g)
            w -= (lr_ * g) / np.sqrt(acc + dt(epsilon))
        elif name == "adadelta":
            r = dt(rho)
            ag, adv = s["accumulated_grad"], s["accumulated_delta_var"]
            ag[...] = r * ag + dt(1 - rho) * np.square(g)
            delta = -((np.sqrt(adv + dt(epsilon)) * g) / np.sqrt(ag + dt(epsilon)))
            adv[...] = r * adv + dt(1 - rho) * np.square(delta)
            w += lr_ * delta
        elif name == "adamax":
            b1p = dt(beta_1) ** local_step
            m, u = s["momentum"], s["norm"]
            m += (g - m) * dt(1 - beta_1)
            u[...] = np.maximum(dt(beta_2) * u, np.abs(g))
            w -= (lr_ * m) / ((one - b1p) * (u + dt(epsilon)))
        elif name == "nadam":
            b1, b2 = dt(beta_1), dt(beta_2)
            u_t = b1 * (one - dt(0.5) * decay ** local_step)
            u_t1 = b1 * (one - dt(0.5) * decay ** dt(t + 2))
            up = state[0]
            up1 = up * u_t1
            b2p = b2 ** local_step
            m, v = s["momentum"], s["velocity"]
            m += (g - m) * (one - b1)
            v += (np.square(g) - v) * (one - b2)
            m_hat = (u_t1 * m) / (one - up1) + ((one - u_t) * g) / (one - up)
            v_hat = v / (one - b2p)
            w -= (m_hat * lr_) / (np.sqrt(v_hat) + dt(epsilon))
        else:
            raise ValueError(f"Unknown algorithm {name!r}; expected one of {list(ALGORITHMS)}")
