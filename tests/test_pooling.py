"""Pooling is a pure function of hidden states and mask, right for left and right padding."""

import pytest
import torch

from evalkit.encoding.pooling import first_token_pool, last_token_pool, mean_pool

pytestmark = pytest.mark.unit

LENGTHS = [5, 2, 3]


def padded(side: str):
    """Hidden states whose value at position p of row r is 100*r + p (over the real tokens)."""
    width = max(LENGTHS)
    hidden = torch.full((len(LENGTHS), width, 2), -1.0)
    mask = torch.zeros((len(LENGTHS), width), dtype=torch.long)
    for row, n in enumerate(LENGTHS):
        cols = range(width - n, width) if side == "left" else range(n)
        for pos, col in enumerate(cols):
            hidden[row, col] = 100 * row + pos
            mask[row, col] = 1
    return hidden, mask


@pytest.mark.parametrize("side", ["left", "right"])
def test_last_token_is_the_last_real_token(side):
    hidden, mask = padded(side)
    assert last_token_pool(hidden, mask)[:, 0].tolist() == [100 * r + n - 1 for r, n in enumerate(LENGTHS)]


@pytest.mark.parametrize("side", ["left", "right"])
def test_first_token_is_the_first_real_token(side):
    hidden, mask = padded(side)
    assert first_token_pool(hidden, mask)[:, 0].tolist() == [100 * r for r in range(len(LENGTHS))]


@pytest.mark.parametrize("side", ["left", "right"])
def test_mean_ignores_padding(side):
    hidden, mask = padded(side)
    expected = [100 * r + (n - 1) / 2 for r, n in enumerate(LENGTHS)]
    assert mean_pool(hidden, mask)[:, 0].tolist() == pytest.approx(expected)


def test_pooling_returns_float32_from_half_inputs():
    hidden, mask = padded("right")
    assert last_token_pool(hidden.half(), mask).dtype == torch.float32
