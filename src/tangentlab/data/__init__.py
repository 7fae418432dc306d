"""Datasets that work with no network: digits, MNIST-1D, MNIST (5k and full), teacher-student, user ``.npz``, and
CIFAR-10/100 from the python archive a user already has (``cifar10:PATH``, ``cifar100:PATH``).

:func:`load` returns a :class:`Dataset` (train/test/validation tensors, class indices, how it was made).
"""

from tangentlab.data.dataset import Dataset
from tangentlab.data.load import DATASETS, FILE_KINDS, OPTIONS, input_files, load, pool_sizes, split_name

__all__ = ["DATASETS", "FILE_KINDS", "OPTIONS", "Dataset", "input_files", "load", "pool_sizes", "split_name"]
