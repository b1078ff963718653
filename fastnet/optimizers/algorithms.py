"""The optimizers: SGD, RMSprop, Adam, AdamW, Adagrad, Adadelta, Nadam and Adamax.

Each has Keras 3's defaults and update rule (``t`` counts steps from 1, ``g`` is
the clipped gradient, every formula elementwise):

* SGD: ``m = momentum * m - lr * g``; ``w += m`` (Nesterov: ``w += momentum * m - lr * g``);
  without momentum ``w -= lr * g``.
* RMSprop: ``v = rho * v + (1 - rho) * g**2``; centered: ``a = rho * a + (1 - rho) * g`` and
  ``d = lr * g / sqrt(v - a**2 + eps)``, else ``d = lr * g / sqrt(v + eps)``;
  with momentum ``m = momentum * m + d; w -= m``, else ``w -= d``.
* Adam: ``m += (g - m) * (1 - beta_1)``; ``v += (g**2 - v) * (1 - beta_2)``;
  ``w -= m * lr * sqrt(1 - beta_2**t) / (1 - beta_1**t) / (sqrt(v) + eps)``; AMSGrad uses
  the running maximum of v.
* AdamW: Adam with ``weight_decay=0.004``.
* Adagrad: ``acc += g**2`` (starting at ``initial_accumulator_value``);
  ``w -= lr * g / sqrt(acc + eps)``.
* Adadelta: ``Eg = rho * Eg + (1 - rho) * g**2``; ``dx = -sqrt(Edx + eps) * g / sqrt(Eg + eps)``;
  ``Edx = rho * Edx + (1 - rho) * dx**2``; ``w += lr * dx``.
* Adamax: ``m += (g - m) * (1 - beta_1)``; ``u = max(beta_2 * u, |g|)``;
  ``w -= lr * m / ((1 - beta_1**t) * (u + eps))``.
* Nadam: Adam with Nesterov momentum and the momentum schedule
  ``mu_t = beta_1 * (1 - 0.5 * 0.96**t)``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from fastnet.optimizers import base
from fastnet.optimizers.base import Optimizer, check_number

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastnet._typing import Config
    from fastnet.optimizers.schedules import LearningRateSchedule

__all__ = ["SGD", "RMSprop", "Adam", "AdamW", "Adagrad", "Adadelta", "Nadam", "Adamax"]


def _common(kwargs, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
            ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps, name):
    kwargs.update(weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
                  global_clipnorm=global_clipnorm, use_ema=use_ema, ema_momentum=ema_momentum,
                  ema_overwrite_frequency=ema_overwrite_frequency,
                  loss_scale_factor=loss_scale_factor,
                  gradient_accumulation_steps=gradient_accumulation_steps, name=name)
    return kwargs


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum.

    Args:
        learning_rate: float, schedule or callable (default 0.01).
        momentum: float in [0, 1] (default 0.0).
        nesterov: whether to use Nesterov momentum (default False).
        Other arguments: see :class:`fastnet.optimizers.Optimizer`.
    """

    _algo = base.ALG_SGD

    def __init__(self, learning_rate: float | LearningRateSchedule | Callable[[], float] = 0.01, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float | None = None, clipnorm: float | None = None,
                 clipvalue: float | None = None, global_clipnorm: float | None = None, use_ema: bool = False,
                 ema_momentum: float = 0.99, ema_overwrite_frequency: int | None = None,
                 loss_scale_factor: float | None = None, gradient_accumulation_steps: int | None = None,
                 name: str | None = None, **kwargs) -> None:
        super().__init__(learning_rate=learning_rate, **_common(
            kwargs, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
            ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps, name))
        self.momentum = check_number("SGD", "momentum", momentum, 0.0, 1.0)
        self.nesterov = bool(nesterov)

    def _slot_layout(self):
        return [[(0, "momentum")]] if self.momentum != 0 else []

    def _kernel_params(self):
        flags = 0
        if self.momentum != 0:
            flags |= base.FLAG_MOMENTUM
            if self.nesterov:
                flags |= base.FLAG_NESTEROV
        return flags, self.momentum, 0.0, 0.0

    def get_config(self) -> Config:
        config = super().get_config()
        config.update(momentum=self.momentum, nesterov=self.nesterov)
        return config


class RMSprop(Optimizer):
    """RMSprop: divides the gradient by a running root mean square of past gradients.

    Args:
        learning_rate: float, schedule or callable (default 0.001).
        rho: discount of the running averages, in [0, 1] (default 0.9).
        momentum: momentum in [0, 1] (default 0.0; a momentum slot is kept when > 0).
        epsilon: added to the mean square before the square root (default 1e-7).
        centered: normalise by the estimated variance instead of the mean square.
        Other arguments: see :class:`fastnet.optimizers.Optimizer`.
    """

    _algo = base.ALG_RMSPROP

    def __init__(self, learning_rate: float | LearningRateSchedule | Callable[[], float] = 0.001, rho: float = 0.9,
                 momentum: float = 0.0, epsilon: float = 1e-7, centered: bool = False,
                 weight_decay: float | None = None, clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None, use_ema: bool = False, ema_momentum: float = 0.99,
                 ema_overwrite_frequency: int | None = None, loss_scale_factor: float | None = None,
                 gradient_accumulation_steps: int | None = None, name: str | None = None, **kwargs) -> None:
        super().__init__(learning_rate=learning_rate, **_common(
            kwargs, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
            ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps, name))
        self.rho = check_number("RMSprop", "rho", rho, 0.0, 1.0)
        self.momentum = check_number("RMSprop", "momentum", momentum, 0.0, 1.0)
        self.epsilon = check_number("RMSprop", "epsilon", epsilon, 0.0)
        self.centered = bool(centered)

    def _slot_layout(self):
        # Kernel rows: velocity, then momentum (if kept), then the average gradient.
        layout = [[(0, "velocity")]]
        row = 1
        if self.momentum > 0:
            layout.append([(row, "momentum")])
            row += 1
        if self.centered:
            layout.append([(row, "average_gradient")])
        return layout

    def _kernel_params(self):
        flags = (base.FLAG_MOMENTUM if self.momentum > 0 else 0) | (
            base.FLAG_CENTERED if self.centered else 0)
        return flags, self.rho, self.momentum, self.epsilon

    def get_config(self) -> Config:
        config = super().get_config()
        config.update(rho=self.rho, momentum=self.momentum, epsilon=self.epsilon,
                      centered=self.centered)
        return config


class Adam(Optimizer):
    """Adam: adaptive moment estimation.

    Args:
        learning_rate: float, schedule or callable (default 0.001).
        beta_1: decay of the first-moment estimate, in [0, 1) (default 0.9).
        beta_2: decay of the second-moment estimate, in [0, 1) (default 0.999).
        epsilon: added to ``sqrt(v)`` (default 1e-7).
        amsgrad: use the running maximum of the second moment (AMSGrad).
        Other arguments: see :class:`fastnet.optimizers.Optimizer`.
    """

    _algo = base.ALG_ADAM

    def __init__(self, learning_rate: float | LearningRateSchedule | Callable[[], float] = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, amsgrad: bool = False, weight_decay: float | None = None,
                 clipnorm: float | None = None, clipvalue: float | None = None, global_clipnorm: float | None = None,
                 use_ema: bool = False, ema_momentum: float = 0.99, ema_overwrite_frequency: int | None = None,
                 loss_scale_factor: float | None = None, gradient_accumulation_steps: int | None = None,
                 name: str | None = None, **kwargs) -> None:
        super().__init__(learning_rate=learning_rate, **_common(
            kwargs, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
            ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps, name))
        cls = type(self).__name__
        self.beta_1 = check_number(cls, "beta_1", beta_1, 0.0, 1.0, high_open=True)
        self.beta_2 = check_number(cls, "beta_2", beta_2, 0.0, 1.0, high_open=True)
        self.epsilon = check_number(cls, "epsilon", epsilon, 0.0)
        self.amsgrad = bool(amsgrad)

    def _slot_layout(self):
        layout = [[(0, "momentum"), (1, "velocity")]]
        if self.amsgrad:
            layout.append([(2, "velocity_hat")])
        return layout

    def _kernel_params(self):
        return (base.FLAG_AMSGRAD if self.amsgrad else 0), self.beta_1, self.beta_2, self.epsilon

    def get_config(self) -> Config:
        config = super().get_config()
        config.update(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
                      amsgrad=self.amsgrad)
        return config


class AdamW(Adam):
    """Adam with decoupled weight decay (``weight_decay`` defaults to 0.004).

    Args: as :class:`Adam`, plus ``weight_decay`` (a non-negative float, required).
    """

    def __init__(self, learning_rate: float | LearningRateSchedule | Callable[[], float] = 0.001,
                 weight_decay: float = 0.004, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                 amsgrad: bool = False, clipnorm: float | None = None, clipvalue: float | None = None,
                 global_clipnorm: float | None = None, use_ema: bool = False, ema_momentum: float = 0.99,
                 ema_overwrite_frequency: int | None = None, loss_scale_factor: float | None = None,
                 gradient_accumulation_steps: int | None = None, name: str | None = None, **kwargs) -> None:
        if weight_decay is None:
            raise ValueError("AdamW: argument `weight_decay` must be a float; received "
                             "weight_decay=None")
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, amsgrad=amsgrad, weight_decay=weight_decay,
                         clipnorm=clipnorm, clipvalue=clipvalue, global_clipnorm=global_clipnorm,
                         use_ema=use_ema, ema_momentum=ema_momentum,
                         ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, name=name,
                         **kwargs)


class Adagrad(Optimizer):
    """Adagrad: per-parameter rates scaled by the accumulated squared gradients.

    Args:
        learning_rate: float, schedule or callable (default 0.001).
        initial_accumulator_value: starting value of the accumulators, >= 0 (default 0.1).
        epsilon: added to the accumulator before the square root (default 1e-7).
        Other arguments: see :class:`fastnet.optimizers.Optimizer`.
    """

    _algo = base.ALG_ADAGRAD

    def __init__(self, learning_rate: float | LearningRateSchedule | Callable[[], float] = 0.001,
                 initial_accumulator_value: float = 0.1, epsilon: float = 1e-7, weight_decay: float | None = None,
                 clipnorm: float | None = None, clipvalue: float | None = None, global_clipnorm: float | None = None,
                 use_ema: bool = False, ema_momentum: float = 0.99, ema_overwrite_frequency: int | None = None,
                 loss_scale_factor: float | None = None, gradient_accumulation_steps: int | None = None,
                 name: str | None = None, **kwargs) -> None:
        super().__init__(learning_rate=learning_rate, **_common(
            kwargs, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
            ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps, name))
        self.initial_accumulator_value = check_number(
            "Adagrad", "initial_accumulator_value", initial_accumulator_value, 0.0)
        self.epsilon = check_number("Adagrad", "epsilon", epsilon, 0.0)

    def _slot_layout(self):
        return [[(0, "accumulator")]]

    def _init_slots(self, slots):
        slots[0].fill(self.initial_accumulator_value)

    def _kernel_params(self):
        return 0, 0.0, 0.0, self.epsilon

    def get_config(self) -> Config:
        config = super().get_config()
        config.update(initial_accumulator_value=self.initial_accumulator_value,
                      epsilon=self.epsilon)
        return config


class Adadelta(Optimizer):
    """Adadelta: steps scaled by running averages of squared gradients and updates.

    Args:
        learning_rate: float, schedule or callable (default 0.001; 1.0 is the original form).
        rho: decay of the running averages, in [0, 1] (default 0.95).
        epsilon: added inside the square roots (default 1e-7).
        Other arguments: see :class:`fastnet.optimizers.Optimizer`.
    """

    _algo = base.ALG_ADADELTA

    def __init__(self, learning_rate: float | LearningRateSchedule | Callable[[], float] = 0.001, rho: float = 0.95,
                 epsilon: float = 1e-7, weight_decay: float | None = None, clipnorm: float | None = None,
                 clipvalue: float | None = None, global_clipnorm: float | None = None, use_ema: bool = False,
                 ema_momentum: float = 0.99, ema_overwrite_frequency: int | None = None,
                 loss_scale_factor: float | None = None, gradient_accumulation_steps: int | None = None,
                 name: str | None = None, **kwargs) -> None:
        super().__init__(learning_rate=learning_rate, **_common(
            kwargs, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
            ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps, name))
        self.rho = check_number("Adadelta", "rho", rho, 0.0, 1.0)
        self.epsilon = check_number("Adadelta", "epsilon", epsilon, 0.0)

    def _slot_layout(self):
        return [[(0, "accumulated_grad"), (1, "accumulated_delta_var")]]

    def _kernel_params(self):
        return 0, self.rho, 0.0, self.epsilon

    def get_config(self) -> Config:
        config = super().get_config()
        config.update(rho=self.rho, epsilon=self.epsilon)
        return config


class _AdamFamily(Optimizer):
    def __init__(self, learning_rate: float | LearningRateSchedule | Callable[[], float] = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, weight_decay: float | None = None,
                 clipnorm: float | None = None, clipvalue: float | None = None, global_clipnorm: float | None = None,
                 use_ema: bool = False, ema_momentum: float = 0.99, ema_overwrite_frequency: int | None = None,
                 loss_scale_factor: float | None = None, gradient_accumulation_steps: int | None = None,
                 name: str | None = None, **kwargs) -> None:
        super().__init__(learning_rate=learning_rate, **_common(
            kwargs, weight_decay, clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
            ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps, name))
        cls = type(self).__name__
        self.beta_1 = check_number(cls, "beta_1", beta_1, 0.0, 1.0, high_open=True)
        self.beta_2 = check_number(cls, "beta_2", beta_2, 0.0, 1.0, high_open=True)
        self.epsilon = check_number(cls, "epsilon", epsilon, 0.0)

    def _kernel_params(self):
        return 0, self.beta_1, self.beta_2, self.epsilon

    def get_config(self) -> Config:
        config = super().get_config()
        config.update(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon)
        return config


class Nadam(_AdamFamily):
    """Nadam: Adam with Nesterov momentum.

    Args:
        learning_rate: float, schedule or callable (default 0.001).
        beta_1, beta_2: moment decays in [0, 1) (defaults 0.9, 0.999).
        epsilon: added to the root of the corrected second moment (default 1e-7).
        Other arguments: see :class:`fastnet.optimizers.Optimizer`.
    """

    _algo = base.ALG_NADAM

    def _slot_layout(self):
        return [[(0, "momentum"), (1, "velocity")]]

    def _extra_variables(self, dtype):
        # The running product of the momentum factors, kept after the slots.
        return [("u_product", 1.0)]


class Adamax(_AdamFamily):
    """Adamax: Adam with the infinity norm in place of the second moment.

    Args:
        learning_rate: float, schedule or callable (default 0.001).
        beta_1: decay of the first moment, beta_2: decay of the weighted infinity norm,
            both in [0, 1) (defaults 0.9, 0.999).
        epsilon: added to the norm (default 1e-7).
        Other arguments: see :class:`fastnet.optimizers.Optimizer`.
    """

    _algo = base.ALG_ADAMAX

    def _slot_layout(self):
        return [[(0, "momentum"), (1, "norm")]]
