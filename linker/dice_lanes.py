"""The vector similarity kernel: one A row against eight B rows per step, for CPUs with
AVX-512 VPOPCNTDQ.

B is stored in lanes: groups of eight popcount-sorted rows, word-major (group, word, lane), so
one 512-bit load holds the same word of eight rows. Each step ANDs it with one word of the A
row broadcast, counts the bits of all eight lanes with one VPOPCNTQ and adds them to eight
running counts. numba has no vector types, so these loops are written as LLVM intrinsics. On
CPUs without VPOPCNTDQ LLVM emulates the vector count; ``CpuBackend`` then uses the scalar
kernel (``dice_kernel``) unless told otherwise.

Exactness as in ``dice_kernel``: every pair's final test is ``count >= needed[a + b]``. The
half-way stop is taken per group, in one vector loop over a row's groups (``alive_groups``):
after half of the words, a group is dropped when no lane's count plus a bound on the rest can
reach the least count any of its rows needs. Only the few groups left are counted on from
half-way (``lane_counts``) and tested pair by pair.

The bound on the rest is per word: the AND of two words has at most as many bits as the
sparser of them, so the second half adds at most the sum over its words of min(popcount of A's
word, popcount of B's word). It is exact and much tighter than min(A's rest, B's rest) on data
whose CLKs share many bits (clkhash's random names: the same sex and year digits), and cheap:
the per-word popcounts are bytes, so one vector step takes the minimum of 8 words for 8 lanes.
They are counted once per tile (``_rest_word_counts``), a small share of the tile's work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .dice_kernel import popcount64, second_half_popcounts

__all__ = ["LANES", "LaneSide", "lane_tile_pairs", "least_counts"]

LANES = 8
_B_BLOCK_GROUPS = 32  # 256 B rows: first halves of 1024-bit CLKs (16 KiB) stay in L1 (measured)


def _vector_helpers(builder):  # type: ignore[no-untyped-def]
    """LLVM's vector popcount and a broadcast of one word to all lanes."""
    vector = ir.VectorType(ir.IntType(64), LANES)
    ctpop = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vector, [vector]), f"llvm.ctpop.v{LANES}i64")
    zero = ir.Constant(ir.IntType(32), 0)
    broadcast = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)

    def splat(value):  # type: ignore[no-untyped-def]
        single = builder.insert_element(ir.Constant(vector, ir.Undefined), value, zero)
        return builder.shuffle_vector(single, ir.Constant(vector, ir.Undefined), broadcast)

    return vector, ctpop, splat


def _add_group_counts(builder, total, a_data, b_data, group_start, words):  # type: ignore[no-untyped-def]
    """total += popcount(a[x] & b[group_start + 8x : +8]) for x in [0, words)."""
    vector, ctpop, splat = _vector_helpers(builder)
    lanes = ir.Constant(ir.IntType(64), LANES)
    with cgutils.for_range(builder, words) as loop:
        a_words = splat(builder.load(builder.gep(a_data, [loop.index])))
        offset = builder.add(group_start, builder.mul(loop.index, lanes))
        b_words = builder.load(
            builder.bitcast(builder.gep(b_data, [offset]), vector.as_pointer()), align=8)
        bits = builder.call(ctpop, [builder.and_(a_words, b_words)])
        builder.store(builder.add(builder.load(total), bits), total)


@intrinsic
def lane_counts(typingctx, a_row, b_group, counts, start):  # type: ignore[no-untyped-def]  # pragma: no cover
    """counts[l] += popcount(a_row & row l of b_group) over words [start, words), b_group
    being one (words, 8) group."""
    if not (isinstance(b_group, types.Array) and b_group.ndim == 2 and b_group.layout == "C"):
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        a_value, b_value, counts_value, start_value = args
        vector, _, _ = _vector_helpers(builder)
        a_array = context.make_array(signature.args[0])(context, builder, a_value)
        b_data = context.make_array(signature.args[1])(context, builder, b_value).data
        counts_data = context.make_array(signature.args[2])(context, builder, counts_value).data
        counts_pointer = builder.bitcast(counts_data, vector.as_pointer())
        total = cgutils.alloca_once_value(builder, builder.load(counts_pointer, align=8))
        words = cgutils.unpack_tuple(builder, a_array.shape)[0]
        lanes = ir.Constant(ir.IntType(64), LANES)
        _add_group_counts(builder, total, builder.gep(a_array.data, [start_value]), b_data,
                          builder.mul(start_value, lanes), builder.sub(words, start_value))
        builder.store(builder.load(total), counts_pointer, align=8)
        return context.get_dummy_value()

    return types.none(a_row, b_group, counts, types.int64), codegen


def _add_rest_bounds(builder, total, a_bytes, b_bytes, chunks):  # type: ignore[no-untyped-def]
    """total += sum over bytes of min(a_bytes[x], b_bytes lane l [x]) for each lane l, over
    ``chunks`` words of eight packed byte counts (A's broadcast, B's one per lane)."""
    vector, _, splat = _vector_helpers(builder)
    word = ir.IntType(64)
    as_bytes = ir.VectorType(ir.IntType(8), 8 * LANES)
    lanes = ir.Constant(word, LANES)

    def mask(value: int):  # type: ignore[no-untyped-def]
        return ir.Constant(vector, [value] * LANES)

    def shift(value: int):  # type: ignore[no-untyped-def]
        return ir.Constant(vector, [value] * LANES)

    with cgutils.for_range(builder, chunks) as loop:
        a_chunk = builder.bitcast(splat(builder.load(builder.gep(a_bytes, [loop.index]))),
                                  as_bytes)
        b_chunk = builder.bitcast(builder.load(builder.bitcast(
            builder.gep(b_bytes, [builder.mul(loop.index, lanes)]), vector.as_pointer()),
            align=8), as_bytes)
        least = builder.bitcast(builder.select(builder.icmp_unsigned("<", a_chunk, b_chunk),
                                               a_chunk, b_chunk), vector)
        # Eight byte counts (each <= 64) summed within each lane, SWAR.
        pairs = builder.add(builder.and_(least, mask(0x00FF00FF00FF00FF)),
                            builder.and_(builder.lshr(least, shift(8)), mask(0x00FF00FF00FF00FF)))
        quads = builder.and_(builder.add(pairs, builder.lshr(pairs, shift(16))),
                             mask(0x0000FFFF0000FFFF))
        sums = builder.and_(builder.add(quads, builder.lshr(quads, shift(32))), mask(0xFFFF))
        builder.store(builder.add(builder.load(total), sums), total)


@intrinsic
def alive_groups(typingctx, a_words, row, a_bytes, a_pop, b_lanes, b_bytes, b_low_pops,  # type: ignore[no-untyped-def]  # pragma: no cover
                 least_needed, first, stop, half, alive, alive_counts):
    """The half-way test of A row ``row`` against groups [first, stop) of B: writes to ``alive``
    the groups in which some lane l may still reach the threshold, i.e. whose first-half
    count plus the per-word bound on the rest (A's byte counts ``a_bytes[row]``, B's
    ``b_bytes[g]``, see ``_rest_word_counts``) reaches the least count any row of the group
    needs (``least_needed[a_pop + b_low_pops[g]]``, ``least_needed`` being the running minimum
    of ``needed`` from the top, which is not monotone near t = 1), and their first-half counts
    to ``alive_counts``; returns how many. All in one loop, vectors only."""
    if not (isinstance(b_lanes, types.Array) and b_lanes.ndim == 3 and b_lanes.layout == "C"
            and isinstance(a_words, types.Array) and a_words.layout == "C"
            and isinstance(b_bytes, types.Array) and b_bytes.ndim == 3
            and b_bytes.layout == "C"):
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        (a_value, row_value, a_bytes_value, a_pop_value, b_value, b_bytes_value, low_value,
         needed_value, first_value, stop_value, half_value, alive_value, counts_value) = args

        def array(index: int, value):  # type: ignore[no-untyped-def]
            return context.make_array(signature.args[index])(context, builder, value)

        b_data, b_bytes_data = array(4, b_value).data, array(5, b_bytes_value).data
        low_data, needed_data, alive_data = (array(6, low_value).data,
                                             array(7, needed_value).data,
                                             array(11, alive_value).data)
        counts_data = array(12, counts_value).data
        width = cgutils.unpack_tuple(builder, array(4, b_value).shape)[1]
        chunks = cgutils.unpack_tuple(builder, array(5, b_bytes_value).shape)[1]
        a_data = builder.gep(array(0, a_value).data, [builder.mul(row_value, width)])
        a_bytes = builder.gep(array(2, a_bytes_value).data, [builder.mul(row_value, chunks)])
        word = ir.IntType(64)
        vector, _, splat = _vector_helpers(builder)
        lanes = ir.Constant(word, LANES)
        found = cgutils.alloca_once_value(builder, ir.Constant(word, 0))
        total = cgutils.alloca_once(builder, vector)
        bound = cgutils.alloca_once(builder, vector)
        with cgutils.for_range(builder, builder.sub(stop_value, first_value)) as groups:
            g = builder.add(groups.index, first_value)
            builder.store(ir.Constant(vector, None), total)
            _add_group_counts(builder, total, a_data, b_data,
                              builder.mul(g, builder.mul(width, lanes)), half_value)
            builder.store(builder.load(total), bound)
            _add_rest_bounds(builder, bound, a_bytes, builder.gep(
                b_bytes_data, [builder.mul(g, builder.mul(chunks, lanes))]), chunks)
            low = builder.load(builder.gep(low_data, [g]))
            need = builder.load(builder.gep(needed_data, [builder.add(a_pop_value, low)]))
            passing = builder.icmp_signed(">=", builder.load(bound), splat(need))
            mask = builder.bitcast(passing, ir.IntType(LANES))
            none_pass = ir.Constant(ir.IntType(LANES), 0)
            with builder.if_then(builder.icmp_unsigned("!=", mask, none_pass), likely=False):
                n = builder.load(found)
                builder.store(g, builder.gep(alive_data, [n]))
                builder.store(builder.load(total), builder.bitcast(
                    builder.gep(counts_data, [builder.mul(n, lanes)]), vector.as_pointer()),
                    align=8)
                builder.store(builder.add(n, ir.Constant(word, 1)), found)
        return builder.load(found)

    signature = types.int64(a_words, types.int64, a_bytes, types.int64, b_lanes, b_bytes,
                            b_low_pops, least_needed, types.int64, types.int64, types.int64,
                            alive, alive_counts)
    return signature, codegen


@numba.njit(cache=True, nogil=True)
def _rest_word_counts(words: np.ndarray, half: int) -> np.ndarray:  # pragma: no cover
    """Popcounts of each row's words from ``half`` on, one byte each, eight to a uint64:
    (rows, chunks)."""
    rows, width = words.shape
    chunks = (width - half + 7) // 8
    out = np.zeros((rows, chunks), dtype=np.uint64)
    for r in range(rows):
        for x in range(half, width):
            j = x - half
            count: int = popcount64(words[r, x])  # type: ignore[call-arg]
            out[r, j // 8] |= np.uint64(count) << np.uint64(8 * (j % 8))
    return out


@numba.njit(cache=True, nogil=True)
def _lane_rest_word_counts(b_lanes: np.ndarray, first: int, stop: int,
                           half: int) -> np.ndarray:  # pragma: no cover
    """``_rest_word_counts`` of lane groups [first, stop): (groups, chunks, 8), lanes last so
    that one vector load holds a chunk of eight rows."""
    width = b_lanes.shape[1]
    chunks = (width - half + 7) // 8
    out = np.zeros((stop - first, chunks, LANES), dtype=np.uint64)
    for g in range(first, stop):
        for x in range(half, width):
            j = x - half
            for lane in range(LANES):
                count: int = popcount64(b_lanes[g, x, lane])  # type: ignore[call-arg]
                out[g - first, j // 8, lane] |= np.uint64(count) << np.uint64(8 * (j % 8))
    return out


def least_counts(needed: np.ndarray) -> np.ndarray:
    """For each popcount sum s, the least count any sum >= s needs: a lower bound for every
    row of a group from its first (smallest) popcount."""
    return np.minimum.accumulate(needed[::-1])[::-1].copy()


@dataclass(frozen=True)
class LaneSide:
    """B prepared for ``lane_tile_pairs``: popcount-sorted rows in lane groups, and per row
    (padding included) popcount and second-half popcount; per group its least popcount."""

    lanes: np.ndarray
    pops: np.ndarray
    rest: np.ndarray
    low_pops: np.ndarray

    @classmethod
    def of(cls, sorted_words: np.ndarray, sorted_pops: np.ndarray) -> LaneSide:
        lanes = lane_layout(sorted_words)
        pops = np.zeros(len(lanes) * LANES, dtype=np.int64)
        pops[:len(sorted_pops)] = sorted_pops
        rest = np.zeros(len(lanes) * LANES, dtype=np.int64)
        rest[:len(sorted_pops)] = second_half_popcounts(sorted_words)
        # The least popcount of each group's real rows: rows sorted by block and then popcount
        # (a blocked run) are not sorted across a block's end within a group.
        least = np.full(len(pops), np.iinfo(np.int64).max, dtype=np.int64)
        least[:len(sorted_pops)] = sorted_pops
        return cls(lanes, pops, rest, least.reshape(-1, LANES).min(axis=1))


def lane_layout(words: np.ndarray) -> np.ndarray:
    """Rows (n, w) as groups of eight (ceil(n / 8), w, 8), the last padded with zero rows."""
    rows, width = words.shape
    padded = np.zeros((-(-rows // LANES) * LANES, width), dtype=np.uint64)
    padded[:rows] = words
    return np.ascontiguousarray(padded.reshape(-1, LANES, width).transpose(0, 2, 1))


@numba.njit(cache=True, nogil=True)
def lane_tile_pairs(a_words: np.ndarray, a_pops: np.ndarray, a_rest: np.ndarray,
                    a_index: np.ndarray, b_lanes: np.ndarray, b_pops: np.ndarray,
                    b_rest: np.ndarray, b_low_pops: np.ndarray, b_index: np.ndarray,
                    starts: np.ndarray, stops: np.ndarray, needed: np.ndarray,
                    least_needed: np.ndarray, out_a: np.ndarray, out_b: np.ndarray,
                    out_count: np.ndarray) -> tuple[int, int, int]:  # pragma: no cover
    """Every pair (A row r, sorted B row k in [starts[r], stops[r])) whose AND popcount
    reaches needed[a + b], as (a_index, b_index, count). Returns (pairs found, pairs whose
    first half was compared, pairs compared in full), or (-1, 0, 0) if the output is too
    small. B's arrays are those of ``LaneSide``; ``least_needed`` is ``least_counts(needed)``.
    ``a_rest`` and ``b_rest`` (second-half popcounts) are no longer read: the per-word bound
    counted here from the words is tighter; they stay for the callers.
    """
    half = a_words.shape[1] // 2
    found = 0
    visited = 0
    completed = 0
    capacity = out_a.shape[0]
    rows = a_words.shape[0]
    if rows == 0:
        return 0, 0, 0
    alive = np.empty(_B_BLOCK_GROUPS, dtype=np.int64)
    alive_counts = np.empty((_B_BLOCK_GROUPS, LANES), dtype=np.int64)
    lowest = starts.min() // LANES
    highest = (stops.max() + LANES - 1) // LANES
    a_bytes = _rest_word_counts(a_words, half)
    b_bytes = _lane_rest_word_counts(b_lanes, lowest, highest, half)
    for block in range(lowest, highest, _B_BLOCK_GROUPS):
        block_end = min(block + _B_BLOCK_GROUPS, highest)
        for r in range(rows):
            start, stop = starts[r], stops[r]
            first = max(start // LANES, block)
            last = min((stop + LANES - 1) // LANES, block_end)
            if first >= last:
                continue
            visited += min(stop, last * LANES) - max(start, first * LANES)
            a_pop = a_pops[r]
            survivors: int = alive_groups(  # type: ignore[call-arg]
                a_words, r, a_bytes, a_pop, b_lanes[lowest:], b_bytes, b_low_pops[lowest:],
                least_needed, first - lowest, last - lowest, half, alive, alive_counts)
            for s in range(survivors):
                g = alive[s] + lowest
                base = g * LANES
                completed += min(stop, base + LANES) - max(start, base)
                counts = alive_counts[s]
                lane_counts(a_words[r], b_lanes[g], counts, half)
                for lane in range(max(start - base, 0), min(stop - base, LANES)):
                    k = base + lane
                    if counts[lane] >= needed[a_pop + b_pops[k]]:
                        if found == capacity:
                            return -1, 0, 0
                        out_a[found] = a_index[r]
                        out_b[found] = b_index[k]
                        out_count[found] = counts[lane]
                        found += 1
    return found, visited, completed
