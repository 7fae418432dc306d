"""How a parametrization scales a Dense/Conv layer, in the abc-form of Yang & Hu (2021).

A weight layer computes ``z = m_w * W a + m_b * b`` with ``W_ij ~ N(0, v_w)`` and ``b_k ~ N(0, v_b)`` drawn at
initialisation and ``W``, ``b`` the trainable tensors (so gradients are ``m_w * a`` and ``m_b``). With ``n`` the
fan-in (channels_in × kernel area for a conv), ``n_out`` the fan-out (width or channels):

================  =========================  ==================  ===================  ==============
parametrization   m_w                        v_w                 m_b                  v_b
================  =========================  ==================  ===================  ==============
``"ntk"``         sigma_w / sqrt(n)          1                   sigma_b              1
``"standard"``    1                          sigma_w^2 / n       1                    sigma_b^2
``"mup"`` input   sigma_w sqrt(n_out / n)    1 / n_out           sigma_b sqrt(n_out)  1 / n_out
``"mup"`` hidden  1                          sigma_w^2 / n       sigma_b sqrt(n_out)  1 / n_out
``"mup"`` readout 1 / sqrt(n)                sigma_w^2 / n       sigma_b              1
================  =========================  ==================  ===================  ==============

``"ntk"`` is Jacot et al. (2018); ``"standard"`` is PyTorch's layer with Gaussian init. In standard
parametrization the bias always exists and is trained, so it adds 1 per layer to the NTK even when
``sigma_b = 0`` (it then starts at 0); in NTK parametrization with ``sigma_b = 0`` its multiplier is 0 and it adds
nothing. ``"mup"`` is the maximal-update parametrization of Yang & Hu (2021, "Feature learning in infinite-width
neural networks", ICML, Table/§5 "μP": ``a_1 = -1/2, b_1 = 1/2``; ``a_l = 0, b_l = 1/2``; ``a_{L+1} = 1/2,
b_{L+1} = 1/2``; ``c = 0``, i.e. one width-independent SGD learning rate) with ``n^{-a}`` multipliers and
``n^{-2b}`` init variances taken with respect to the layer's own fan-out (input layer, hidden biases) or fan-in
(hidden and readout weights), and with ``sigma_w``, ``sigma_b`` and the input fan-in folded in so that
pre-activations have the same variance as in the other two parametrizations. Biases count as weights on a
constant input (Yang & Hu), hence their ``sqrt(n_out)`` multiplier; the readout bias, whose fan-out is the fixed
output dimension, keeps NTK scaling. The first weight layer of a net is its "input" layer (also when it is the
only one), the last Dense its "readout". Under μP the readout output has variance ``O(1/n)`` at initialisation
(its NNGP vanishes as width grows) while the NTK stays ``O(1)``.

Kernel recursion for such a layer (``A`` averages over the kernel window for a conv, identity for Dense; ``K``,
``Θ`` are the input features' kernels averaged over units), the finite-width mean-field recursion of Lee et al.
(2018), Jacot et al. (2018) and Arora et al. (2019, CNTK) with general multipliers:

    K_z = m_w^2 v_w n A(K) + m_b^2 v_b,
    Θ_z = m_w^2 v_w n A(Θ) + m_w^2 n A(K) + m_b^2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Role = Literal["input", "hidden", "readout"]


@dataclass(frozen=True)
class Scales:
    """Multipliers and init variances of one weight layer (see the module table)."""

    m_w: float
    v_w: float
    m_b: float
    v_b: float
    fan_in: int

    @property
    def forward_gain(self) -> float:
        """Coefficient of ``A(K)`` (and ``A(Θ)``) in the recursion: ``m_w^2 v_w n``."""
        return self.m_w**2 * self.v_w * self.fan_in

    @property
    def forward_offset(self) -> float:
        """``m_b^2 v_b``: the bias's contribution to the covariance."""
        return self.m_b**2 * self.v_b

    @property
    def gradient_gain(self) -> float:
        """``m_w^2 n``: coefficient of ``A(K)`` in the NTK (the weights' own gradients)."""
        return self.m_w**2 * self.fan_in

    @property
    def gradient_offset(self) -> float:
        """``m_b^2``: the bias's own gradient contribution to the NTK."""
        return self.m_b**2


def layer_scales(
    parametrization: str, role: Role, sigma_w: float, sigma_b: float, fan_in: int, fan_out: int
) -> Scales:
    """The scales of the module table for one layer."""
    n, n_out = fan_in, fan_out
    if parametrization == "ntk":
        return Scales(sigma_w / math.sqrt(n), 1.0, sigma_b, 1.0, n)
    if parametrization == "standard":
        return Scales(1.0, sigma_w**2 / n, 1.0, sigma_b**2, n)
    if role == "input":
        return Scales(sigma_w * math.sqrt(n_out / n), 1.0 / n_out, sigma_b * math.sqrt(n_out), 1.0 / n_out, n)
    if role == "hidden":
        return Scales(1.0, sigma_w**2 / n, sigma_b * math.sqrt(n_out), 1.0 / n_out, n)
    return Scales(1.0 / math.sqrt(n), sigma_w**2 / n, sigma_b, 1.0, n)
