"""Datasets that work with no network: digits, MNIST-1D, MNIST (5k and full), teacher-student, and user ``.npz``.

:func:`load` returns a :class:`Dataset` (train/test/validation tensors, class indices, how it was made).
"""

from tangentlab.data.dataset import Dataset
from tangentlab.data.load import DATASETS, OPTIONS, load, pool_sizes

__all__ = ["DATASETS", "OPTIONS", "Dataset", "load", "pool_sizes"]
