"""The bit order of the half-way test (``linker.bit_order``): a permutation of bit positions
keeps every popcount and AND count, so the CPU kernels find exactly the pairs brute force
finds with the bits reordered; the order is chosen where bits differ in frequency as on
clkhash's random names, not on FEBRL 4 (nothing to gain) nor for small inputs."""

from __future__ import annotations

import numpy as np
import pytest

from linker.backends import candidate_pairs
from linker.backends.cpu import CpuBackend
from linker.bit_order import halfway_survival, permute_rows, reordering, spread_first
from linker.clkset import ClkSet
from linker.dice_kernel import min_counts

from .linker_data import febrl4_sets
from .test_backends import _brute_force


def _frequencies(rng: np.random.Generator, bits: int) -> np.ndarray:
    """Bit frequencies as uneven as on clkhash's random names (there 0.01-1.0, with bits set
    together): a quarter under a tenth, a quarter over four fifths, the rest between."""
    return np.interp(rng.random(bits), [0, 0.1, 0.25, 0.5, 0.75, 0.9, 1],
                     [0, 0.05, 0.1, 0.3, 0.8, 0.95, 1])


def _uneven_clks(rng: np.random.Generator, rows: int, p: np.ndarray) -> np.ndarray:
    """CLK bytes with bit frequencies ``p``, half of the records near-copies of the others."""
    bits = len(p)
    base = rng.random((rows // 2, bits)) < p
    copies = base ^ (rng.random(base.shape) < 0.04)
    return np.packbits(np.vstack([base, copies])[rng.permutation(rows)], axis=1)


def _words(clks: np.ndarray) -> np.ndarray:
    return ClkSet.from_arrays(clks).words


@pytest.mark.parametrize("bits", [64, 1000, 1024])
def test_a_permutation_keeps_every_popcount_and_and_count(bits: int) -> None:
    rng = np.random.default_rng(bits)
    p = _frequencies(rng, bits)
    a, b = _words(_uneven_clks(rng, 60, p)), _words(_uneven_clks(rng, 50, p))
    dest = spread_first(a, b)
    assert sorted(dest.tolist()) == list(range(a.shape[1] * 64))
    moved_a, moved_b = np.empty_like(a), np.empty_like(b)
    permute_rows(a, dest, moved_a)
    permute_rows(b, dest, moved_b)
    assert not np.array_equal(moved_a, a)
    assert np.bitwise_count(moved_a).sum(axis=1).tolist() == \
        np.bitwise_count(a).sum(axis=1).tolist()
    common = np.bitwise_count(a[:, None] & b[None]).sum(axis=2)
    assert np.array_equal(np.bitwise_count(moved_a[:, None] & moved_b[None]).sum(axis=2),
                          common)
    # The bits set in about half of the records come first.
    p = np.unpackbits(np.vstack([a, b]).view(np.uint8), axis=1, bitorder="little").mean(axis=0)
    spread = (p * (1 - p))[np.argsort(dest)]
    assert spread[:bits // 4].min() >= spread[-bits // 4:].max()


def test_the_order_is_chosen_where_it_pays() -> None:
    """Uneven bit frequencies, few pairs passing half-way (Dice 0.85 here) and many pairs to
    compare: reordered, and far fewer pass. Kept: the same data with a million pairs to
    compare; at 0.8, where nearly all pass half-way either way (the branch would turn
    unpredictable: measured slower); FEBRL 4, whose pairs already stop half-way."""
    rng = np.random.default_rng(5)
    p = _frequencies(rng, 1024)
    a, b = _words(_uneven_clks(rng, 2000, p)), _words(_uneven_clks(rng, 2000, p))
    b = b[np.argsort(np.bitwise_count(b).sum(axis=1), kind="stable")]  # as plans sort B
    needed = min_counts(0.85, 1024)
    for per_word in (True, False):
        dest = reordering(a, b, needed, window_pairs=10**10, workers=2, per_word=per_word)
        assert dest is not None
        moved_a, moved_b = np.empty_like(a), np.empty_like(b)
        permute_rows(a, dest, moved_a)
        permute_rows(b, dest, moved_b)
        before = halfway_survival(a[:256], b[:256], needed, per_word)
        assert 0.01 < before <= 0.25
        assert halfway_survival(moved_a[:256], moved_b[:256], needed, per_word) < before / 4
        assert reordering(a, b, needed, window_pairs=10**6, workers=2,
                          per_word=per_word) is None
        assert halfway_survival(a[:256], b[:256], min_counts(0.8, 1024), per_word) > 0.9
        assert reordering(a, b, min_counts(0.8, 1024), window_pairs=10**10, workers=2,
                          per_word=per_word) is None
    febrl_a, febrl_b = febrl4_sets()
    assert reordering(febrl_a.words, febrl_b.words, min_counts(0.8, febrl_a.length),
                      window_pairs=10**10, workers=2) is None


@pytest.mark.parametrize("kernel", ["scalar", "lanes"])
@pytest.mark.parametrize("within", [False, True], ids=["link", "dedup"])
def test_kernels_on_reordered_bits_find_exactly_the_brute_force_pairs(
        kernel: str, within: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU backend with the bits reordered (forced: inputs this small never repay it)
    gives every pair and score of brute force over the data's own order."""
    rng = np.random.default_rng(11)
    p = _frequencies(rng, 1024)
    a_clks, b_clks = _uneven_clks(rng, 300, p), _uneven_clks(rng, 240, p)
    b_clks[:100] = a_clks[:100] ^ np.packbits(rng.random((100, 1024)) < 0.03, axis=1)
    chosen = []

    def always(a_words: np.ndarray, b_words: np.ndarray, *_: object, **__: object) -> np.ndarray:
        chosen.append(spread_first(a_words, b_words))
        return chosen[-1]

    monkeypatch.setattr("linker.backends.cpu.reordering", always)
    backend = CpuBackend(2, tile_rows=37, kernel=kernel)
    a, b = ClkSet.from_arrays(a_clks), None if within else ClkSet.from_arrays(b_clks)
    for threshold in (0.7, 0.8):
        expected = _brute_force(a_clks, None if within else b_clks, threshold)
        found = candidate_pairs(a, b, threshold, backend=backend)
        assert len(expected) > 50
        assert list(zip(found.left.tolist(), found.right.tolist(), found.score.tolist(),
                        strict=True)) == expected, threshold
    assert chosen
