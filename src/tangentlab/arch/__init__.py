"""Architecture descriptions: one description gives the finite network and its infinite-width kernels.

Layers are frozen, hashable dataclasses that serialise to JSON/YAML (:mod:`.serialization`). Any description
``net`` (a layer or ``serial(...)`` of layers, ending with a ``Dense`` readout) offers

- ``net.build(in_shape, *, parametrization="ntk", seed=0, dtype=None, device=None)``: the finite ``nn.Module``;
- ``net.kernel(x1, x2=None, *, parametrization="ntk")``: the infinite-width :class:`Kernel` (NNGP, NTK).

Parametrizations (``"ntk"``, ``"standard"``, ``"mup"``) are defined by one table, :func:`layer_scales` (a weight
layer's multipliers and init variances by parametrization and role; :class:`Scales`), which every layer and every
study that draws its own weights uses. :func:`myrtle` and :func:`resnet` compose the layers into the image networks
of the CIFAR papers (:mod:`.networks`).
"""

from tangentlab.arch._base import LAYERS, BuiltNetwork, Layer, Parametrization, WeightLayer, build, kernel
from tangentlab.arch._parametrization import Scales, layer_scales
from tangentlab.arch._record import Kernel
from tangentlab.arch.activations import Activation, Identity, Sigmoid, Softplus, Tanh
from tangentlab.arch.arccos import Abs, LeakyReLU, ReLU
from tangentlab.arch.combinators import Residual, Serial, residual, serial
from tangentlab.arch.conv import Conv
from tangentlab.arch.dense import Dense
from tangentlab.arch.erf_gelu import GELU, Erf
from tangentlab.arch.networks import myrtle, resnet
from tangentlab.arch.pooling import AvgPool, Flatten, GlobalAvgPool
from tangentlab.arch.serialization import from_dict, from_json, from_yaml

__all__ = [
    "GELU",
    "LAYERS",
    "Abs",
    "Activation",
    "AvgPool",
    "BuiltNetwork",
    "Conv",
    "Dense",
    "Erf",
    "Flatten",
    "GlobalAvgPool",
    "Identity",
    "Kernel",
    "Layer",
    "LeakyReLU",
    "Parametrization",
    "ReLU",
    "Residual",
    "Scales",
    "Serial",
    "Sigmoid",
    "Softplus",
    "Tanh",
    "WeightLayer",
    "build",
    "from_dict",
    "from_json",
    "from_yaml",
    "kernel",
    "layer_scales",
    "myrtle",
    "residual",
    "resnet",
    "serial",
]
