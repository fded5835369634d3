"""Training data: the seeds' random regression set and scikit-learn's handwritten digits.

Nothing is downloaded: the digits (1,797 8x8 images) ship inside scikit-learn.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

DIGITS_TEST_FRACTION = 0.25
DIGITS_SPLIT_SEED = 0  # the held-out set is fixed, whatever --seed training uses
IMAGE_SIZE = 32  # LeNet's input side


@dataclass(frozen=True)
class Dataset:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None


def random_regression(seed: int) -> Dataset:
    """The seeds' set-up: N, D_in, D_out = 64, 1000, 10, x and y standard normal."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 1000, generator=generator)  # (N, D_in)
    y = torch.randn(64, 10, generator=generator)  # (N, D_out)
    return Dataset(x, y)


def digits(seed: int = DIGITS_SPLIT_SEED) -> Dataset:
    """scikit-learn's digits, upsampled to 1x32x32 and normalised to [-1, 1].

    The blitz normalises with mean 0.5 and std 0.5 after scaling to [0, 1]; the
    digits' pixels run 0..16. Bilinear upsampling keeps the strokes wide enough for
    LeNet's two 5x5 convolutions, where zero padding would leave an 8x8 speck.
    The split is stratified and fixed, so every command sees the same held-out set.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (N, 1, 8, 8)
    images = F.interpolate(images, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear",
                           align_corners=False)  # (N, 1, 32, 32)
    images = (images - 0.5) / 0.5
    labels = torch.tensor(bunch.target, dtype=torch.int64)
    train_idx, test_idx = train_test_split(
        range(len(labels)), test_size=DIGITS_TEST_FRACTION, random_state=seed, stratify=labels
    )
    return Dataset(images[train_idx], labels[train_idx], images[test_idx], labels[test_idx])


LOADERS = {"random-regression": random_regression, "digits": lambda seed: digits()}


def dataset(recipe, seed: int) -> Dataset:
    """A recipe's data: a loader named in LOADERS, or the spec's own callable (seed -> Dataset)."""
    return recipe.data(seed) if callable(recipe.data) else LOADERS[recipe.data](seed)
