"""The bit order and first test of the CPU kernels (``linker.bit_order``): a permutation of bit
positions keeps every popcount and AND count, so the CPU kernels find exactly the pairs brute
force finds with the bits reordered; the order is chosen where bits differ in frequency as on
clkhash's random names, not on FEBRL 4 (nothing to gain) nor for small inputs; the lanes
kernel's first test comes early where few groups pass it."""

from __future__ import annotations

import numpy as np
import pytest

from linker.backends import candidate_pairs
from linker.backends.cpu import CpuBackend
from linker.bit_order import KernelOrder, kernel_order, permute_rows, spread_first, survival
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


def _chosen(order: KernelOrder) -> tuple[bool, int]:
    """Whether the bits are reordered, and the words counted before the first test."""
    return order.dest is not None, order.early


def test_the_order_is_chosen_where_it_pays() -> None:
    """Uneven bit frequencies, few pairs passing half-way (Dice 0.85 here) and many pairs to
    compare: reordered, and far fewer pass. At 0.8, where nearly all pass half-way as they
    are and nearly none reordered: reordered too. Kept: the same data with a million pairs
    to compare; at 0.7, where nearly all pass half-way either way (a test most pass is a
    branch mispredicted: measured slower)."""
    rng = np.random.default_rng(5)
    p = _frequencies(rng, 1024)
    a, b = _words(_uneven_clks(rng, 2000, p)), _words(_uneven_clks(rng, 2000, p))
    b = b[np.argsort(np.bitwise_count(b).sum(axis=1), kind="stable")]  # as plans sort B
    needed = min_counts(0.85, 1024)
    for per_word in (True, False):
        dest = kernel_order(a, b, needed, window_pairs=10**10, workers=2,
                            per_word=per_word).dest
        assert dest is not None
        moved_a, moved_b = np.empty_like(a), np.empty_like(b)
        permute_rows(a, dest, moved_a)
        permute_rows(b, dest, moved_b)
        before = survival(a[:256], b[:256], needed, per_word)[0]
        assert 0.01 < before <= 0.25
        assert survival(moved_a[:256], moved_b[:256], needed, per_word)[0] < before / 4
        assert _chosen(kernel_order(a, b, needed, window_pairs=10**6, workers=2,
                                    per_word=per_word)) == (False, 8)
        assert survival(a[:256], b[:256], min_counts(0.8, 1024), per_word)[0] > 0.9
        assert kernel_order(a, b, min_counts(0.8, 1024), window_pairs=10**10, workers=2,
                            per_word=per_word).dest is not None
        assert survival(moved_a[:256], moved_b[:256], min_counts(0.7, 1024), per_word)[0] > 0.9
        assert _chosen(kernel_order(a, b, min_counts(0.7, 1024), window_pairs=10**10,
                                    workers=2, per_word=per_word)) == (False, 8)


def test_the_first_test_comes_early_where_few_groups_pass_it() -> None:
    """FEBRL 4 at Dice 0.8: after 6 or 7 of its 16 words nearly every lane group is dropped
    already, so the lanes kernel tests there, not at the half. Its random halves at 0.5,
    where most groups pass even half-way, are tested at the half; the scalar kernel always
    tests at the half."""
    febrl_a, febrl_b = febrl4_sets()
    a = febrl_a.words
    b = febrl_b.words[np.argsort(febrl_b.popcounts, kind="stable")]
    needed = min_counts(0.8, febrl_a.length)
    shares = survival(a[:256], b[:2048], needed, True, (6, 7, 8))
    assert shares[0] < 0.1 and shares[1] < 0.01, shares
    assert kernel_order(a, b, needed, window_pairs=10**10, workers=2).early in (6, 7)
    low = min_counts(0.5, febrl_a.length)
    assert survival(a[:256], b[:2048], low, True, (8,))[0] > 0.25
    assert _chosen(kernel_order(a, b, low, window_pairs=10**10, workers=2)) == (False, 8)
    assert kernel_order(a, b, needed, window_pairs=10**10, workers=2,
                        per_word=False).early == 8


@pytest.mark.parametrize("kernel", ["scalar", "lanes"])
@pytest.mark.parametrize("within", [False, True], ids=["link", "dedup"])
def test_kernels_on_reordered_bits_find_exactly_the_brute_force_pairs(
        kernel: str, within: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU backend with the bits reordered and the lanes kernel's first test after six
    words (forced: inputs this small never repay it) gives every pair and score of brute
    force over the data's own order."""
    rng = np.random.default_rng(11)
    p = _frequencies(rng, 1024)
    a_clks, b_clks = _uneven_clks(rng, 300, p), _uneven_clks(rng, 240, p)
    b_clks[:100] = a_clks[:100] ^ np.packbits(rng.random((100, 1024)) < 0.03, axis=1)
    chosen = []

    def always(a_words: np.ndarray, b_words: np.ndarray, *_: object,
               **__: object) -> KernelOrder:
        chosen.append(spread_first(a_words, b_words))
        return KernelOrder(chosen[-1], 6)

    monkeypatch.setattr("linker.backends.cpu.kernel_order", always)
    backend = CpuBackend(2, tile_rows=37, kernel=kernel)
    a, b = ClkSet.from_arrays(a_clks), None if within else ClkSet.from_arrays(b_clks)
    for threshold in (0.7, 0.8):
        expected = _brute_force(a_clks, None if within else b_clks, threshold)
        found = candidate_pairs(a, b, threshold, backend=backend)
        assert len(expected) > 50
        assert list(zip(found.left.tolist(), found.right.tolist(), found.score.tolist(),
                        strict=True)) == expected, threshold
    assert chosen
