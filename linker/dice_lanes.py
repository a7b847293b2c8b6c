"""The vector similarity kernel: one A row against eight B rows per step, the CPU backend's
default.

B is stored in lanes: groups of eight popcount-sorted rows, word-major (group, word, lane), so
one 512-bit load holds the same word of eight rows. Each step ANDs it with one word of the A
row broadcast, counts the bits of all eight lanes with one VPOPCNTQ and adds them to eight
running counts. numba has no vector types, so these loops are written as LLVM intrinsics. On
CPUs without VPOPCNTDQ LLVM counts vectors by a table lookup per half byte (VPSHUFB with
AVX2 or AVX-512 BW, shifts and adds with SSE only), which still beats the scalar kernel's one
POPCNT per word and pair (``dice_kernel``). Measured on one Intel Xeon, numba compiling for
fewer features (NUMBA_CPU_NAME and NUMBA_CPU_FEATURES), one thread, 10,000 x 10,000 at 0.8,
FEBRL-like / random names, seconds scalar -> lanes: AVX2 (haswell) 0.43 -> 0.17 / 0.45 ->
0.21; AVX-512 without VPOPCNTDQ (skylake-avx512) 0.44 -> 0.12 / 0.45 -> 0.15; SSE 4.2
(nehalem) 0.49 -> 0.33 / 0.50 -> 0.38; the whole 60k x 60k ``pprl link`` for haswell 8.5 ->
3.2 s / 8.7 -> 4.0 s (anonlink: 16 s).

Exactness as in ``dice_kernel``: every pair's final test is ``count >= needed[a + b]``. The
whole test of a row against its groups is one vector loop (``passing_groups``): after half of
the words a group is dropped when no lane's count plus a bound on the rest can reach the least
count any of its rows needs; the few groups left are counted to the last word and their lanes
tested against their own needed counts in the same loop, so only groups holding a candidate
leave it (on clkhash's random names 9% of groups pass half-way, under 0.03% hold a candidate;
testing the 9% lane by lane outside the loop cost as much as the half-way test of all). For
1024-bit CLKs the loop is straight-line code, the row's first half held in registers, and the
same test may come first after 6 or 7 words (``EARLY_TESTS``, chosen by
``bit_order.kernel_order``; on FEBRL-like CLKs under 1% of the groups pass it).

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
from llvmlite import binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .dice_kernel import popcount64

__all__ = ["LANES", "LaneSide", "compiled_for", "lane_tile_pairs", "least_counts"]

LANES = 8
_B_BLOCK_GROUPS = 16  # 128 B rows, whole 1024-bit CLKs (16 KiB) in L1: 32, 64 measured slower
_UNROLLED_HALF = 8  # words in half of a 1024-bit CLK: that width's half-way test is unrolled
# Words of a 1024-bit CLK that may be counted before its first test (the last: the half).
EARLY_TESTS = (6, 7, 8)


def compiled_for(feature: str) -> bool:
    """Whether numba compiles for a CPU with ``feature`` (LLVM's name, e.g. avx512vpopcntdq):
    the host's, or those NUMBA_CPU_NAME / NUMBA_CPU_FEATURES name."""
    name, features = (getattr(numba.config, key, None) for key in ("CPU_NAME", "CPU_FEATURES"))
    if name or features:  # compiled for another CPU
        return f"+{feature}" in (features or "")
    return bool(llvm.get_host_cpu_features().get(feature, False))


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


def _least_bytes(builder, a_chunk, b_chunk):  # type: ignore[no-untyped-def]
    """Bytewise min(A's byte, B's byte) of eight packed per-word popcounts in each lane."""
    vector, _, _ = _vector_helpers(builder)
    as_bytes = ir.VectorType(ir.IntType(8), 8 * LANES)
    a_chunk, b_chunk = builder.bitcast(a_chunk, as_bytes), builder.bitcast(b_chunk, as_bytes)
    return builder.bitcast(builder.select(builder.icmp_unsigned("<", a_chunk, b_chunk),
                                          a_chunk, b_chunk), vector)


def _least_byte_sums(builder, a_chunk, b_chunk):  # type: ignore[no-untyped-def]
    """For each lane, the sum over its eight bytes of min(A's byte, B's byte): the bound on
    the AND count of eight words from their per-word popcounts (one byte each)."""
    return _byte_sums(builder, _least_bytes(builder, a_chunk, b_chunk))


def _byte_sums(builder, least):  # type: ignore[no-untyped-def]
    """Each lane's eight bytes summed."""
    vector, _, _ = _vector_helpers(builder)
    as_bytes = ir.VectorType(ir.IntType(8), 8 * LANES)

    def constant(value: int):  # type: ignore[no-untyped-def]
        return ir.Constant(vector, [value] * LANES)

    if compiled_for("avx512bw"):  # VPSADBW against zero: each lane's eight bytes summed
        sad = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
            vector, [as_bytes, as_bytes]), "llvm.x86.avx512.psad.bw.512")
        return builder.call(sad, [builder.bitcast(least, as_bytes), ir.Constant(as_bytes, None)])
    # Eight byte counts (each <= 64) summed within each lane, SWAR.
    pairs = builder.add(builder.and_(least, constant(0x00FF00FF00FF00FF)),
                        builder.and_(builder.lshr(least, constant(8)),
                                     constant(0x00FF00FF00FF00FF)))
    quads = builder.and_(builder.add(pairs, builder.lshr(pairs, constant(16))),
                         constant(0x0000FFFF0000FFFF))
    return builder.and_(builder.add(quads, builder.lshr(quads, constant(32))), constant(0xFFFF))


def _add_rest_bounds(builder, total, a_bytes, b_bytes, chunks):  # type: ignore[no-untyped-def]
    """total += ``_least_byte_sums`` over ``chunks`` words of eight packed byte counts (A's
    broadcast, B's one per lane)."""
    vector, _, splat = _vector_helpers(builder)
    lanes = ir.Constant(ir.IntType(64), LANES)
    with cgutils.for_range(builder, chunks) as loop:
        a_chunk = splat(builder.load(builder.gep(a_bytes, [loop.index])))
        b_chunk = builder.load(builder.bitcast(
            builder.gep(b_bytes, [builder.mul(loop.index, lanes)]), vector.as_pointer()),
            align=8)
        builder.store(builder.add(builder.load(total), _least_byte_sums(builder, a_chunk,
                                                                          b_chunk)), total)


@intrinsic
def passing_groups(typingctx, a_words, row, a_bytes, a_pop, b_lanes, b_bytes, b_low_pops,  # type: ignore[no-untyped-def]  # pragma: no cover
                   b_pops, needed, least_needed, first, stop, window, half, early, passing,
                   passing_counts, passing_lanes, completed):
    """A row ``row`` against groups [first, stop) of B, all in one loop, vectors only.

    After half of the words a group is dropped when no lane's count plus the per-word bound on
    the rest (A's byte counts ``a_bytes[row]``, B's ``b_bytes[g]``, see
    ``_rest_word_counts``) reaches the least count any row of the group needs
    (``least_needed[a_pop + b_low_pops[g]]``, ``least_needed`` being the running minimum of
    ``needed`` from the top, which is not monotone near t = 1); for 1024-bit CLKs the same
    test may come first after ``early`` words (one of ``EARLY_TESTS``), a group left then
    counted to the half and tested again. A group left is counted to
    the last word and each lane tested against ``needed[a_pop + b_pops[lane]]``, lanes
    outside B rows ``window`` = (start, stop) masked out. Writes the groups with a passing
    lane to ``passing``, their counts to ``passing_counts`` and their lanes as a bit mask to
    ``passing_lanes``; adds the pairs counted in full to ``completed[0]``; returns how many
    groups passed."""
    if not (isinstance(b_lanes, types.Array) and b_lanes.ndim == 3 and b_lanes.layout == "C"
            and isinstance(a_words, types.Array) and a_words.layout == "C"
            and isinstance(b_bytes, types.Array) and b_bytes.ndim == 3
            and b_bytes.layout == "C"):
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        (a_value, row_value, a_bytes_value, a_pop_value, b_value, b_bytes_value, low_value,
         pops_value, needed_value, least_value, first_value, stop_value, window_value,
         half_value, early_value, passing_value, counts_value, lanes_value,
         completed_value) = args

        def data(index: int, value):  # type: ignore[no-untyped-def]
            return context.make_array(signature.args[index])(context, builder, value).data

        b_data, b_bytes_data = data(4, b_value), data(5, b_bytes_value)
        b_array = context.make_array(signature.args[4])(context, builder, b_value)
        width = cgutils.unpack_tuple(builder, b_array.shape)[1]
        chunks = cgutils.unpack_tuple(builder, context.make_array(signature.args[5])(
            context, builder, b_bytes_value).shape)[1]
        a_data = builder.gep(data(0, a_value), [builder.mul(row_value, width)])
        a_bytes = builder.gep(data(2, a_bytes_value), [builder.mul(row_value, chunks)])
        pops_data, needed_data = data(7, pops_value), data(8, needed_value)
        low_data, least_data = data(6, low_value), data(9, least_value)
        passing_data, counts_data = data(15, passing_value), data(16, counts_value)
        lanes_data, completed_data = data(17, lanes_value), data(18, completed_value)
        window_start, window_stop = cgutils.unpack_tuple(builder, window_value)
        word = ir.IntType(64)
        mask_type = ir.IntType(LANES)
        vector, ctpop_vector, splat = _vector_helpers(builder)
        lanes = ir.Constant(word, LANES)
        lane_ids = ir.Constant(vector, list(range(LANES)))
        found = cgutils.alloca_once_value(builder, ir.Constant(word, 0))
        full = cgutils.alloca_once_value(builder, ir.Constant(word, 0))
        total = cgutils.alloca_once(builder, vector)
        bound = cgutils.alloca_once(builder, vector)
        ctpop_mask = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(mask_type, [mask_type]), f"llvm.ctpop.i{LANES}")
        none = ir.Constant(mask_type, 0)

        def unrolled_counts(a_vectors, group_words, first_word):  # type: ignore[no-untyped-def]
            """counts of words [first_word, first_word + len(a_vectors)) of group g, as
            ``_add_group_counts`` gives them, in straight-line code."""
            counts = ir.Constant(vector, None)
            for x, a_vector in enumerate(a_vectors):
                b_vector = builder.load(builder.bitcast(builder.gep(b_data, [builder.add(
                    group_words, ir.Constant(word, (first_word + x) * LANES))]),
                    vector.as_pointer()), align=8)
                counts = builder.add(counts, builder.call(
                    ctpop_vector, [builder.and_(a_vector, b_vector)]))
            return counts

        def group_least(g):  # type: ignore[no-untyped-def]
            """The least count any row of group g needs."""
            low = builder.load(builder.gep(low_data, [g]))
            return builder.load(builder.gep(least_data, [builder.add(a_pop_value, low)]))

        def finish(g, group_words, second_half):  # type: ignore[no-untyped-def]
            """The half-way test of group g (``total``: its first-half counts, ``bound``:
            with the bound on the rest added) and, if it passes, the full count
            (``second_half(group_words)`` adds the rest to ``total``) and test."""
            least = group_least(g)
            alive = builder.bitcast(
                builder.icmp_signed(">=", builder.load(bound), splat(least)), mask_type)
            with builder.if_then(builder.icmp_unsigned("!=", alive, none), likely=False):
                second_half(group_words)
                first_row = builder.mul(g, lanes)
                rows = builder.add(splat(first_row), lane_ids)
                inside = builder.and_(builder.icmp_signed(">=", rows, splat(window_start)),
                                      builder.icmp_signed("<", rows, splat(window_stop)))
                inside_mask = builder.bitcast(inside, mask_type)
                builder.store(builder.add(builder.load(full), builder.zext(
                    builder.call(ctpop_mask, [inside_mask]), word)), full)
                counts = builder.load(total)
                # Most groups alive half-way reach not even the group's least need: their
                # lanes' own needs are not looked up.
                some = builder.bitcast(builder.icmp_signed(">=", counts, splat(least)),
                                       mask_type)
                with builder.if_then(builder.icmp_unsigned("!=", some, none), likely=False):
                    sums = builder.add(splat(a_pop_value), builder.load(builder.bitcast(
                        builder.gep(pops_data, [first_row]), vector.as_pointer()), align=8))
                    needs = ir.Constant(vector, ir.Undefined)
                    for lane in range(LANES):
                        at = ir.Constant(ir.IntType(32), lane)
                        need = builder.load(builder.gep(needed_data, [
                            builder.extract_element(sums, at)]))
                        needs = builder.insert_element(needs, need, at)
                    reached = builder.and_(builder.icmp_signed(">=", counts, needs), inside)
                    reached_mask = builder.bitcast(reached, mask_type)
                    record(g, counts, reached_mask)

        def record(g, counts, reached_mask):  # type: ignore[no-untyped-def]
            """Group g's counts and passing lanes, if any lane passed."""
            with builder.if_then(builder.icmp_unsigned("!=", reached_mask, none),
                                 likely=False):
                n = builder.load(found)
                builder.store(g, builder.gep(passing_data, [n]))
                builder.store(counts, builder.bitcast(
                    builder.gep(counts_data, [builder.mul(n, lanes)]), vector.as_pointer()),
                    align=8)
                builder.store(builder.zext(reached_mask, word), builder.gep(lanes_data, [n]))
                builder.store(builder.add(n, ir.Constant(word, 1)), found)

        def generic_second_half(group_words):  # type: ignore[no-untyped-def]
            _add_group_counts(builder, total, builder.gep(a_data, [half_value]), b_data,
                              builder.add(group_words, builder.mul(half_value, lanes)),
                              builder.sub(width, half_value))

        groups = builder.sub(stop_value, first_value)
        unrolled = builder.and_(
            builder.icmp_signed("==", half_value, ir.Constant(word, _UNROLLED_HALF)),
            builder.icmp_signed("==", chunks, ir.Constant(word, 1)))
        with builder.if_else(unrolled, likely=True) as (standard, other):
            with standard:  # 1024-bit CLKs: A's half and byte counts loaded once, unrolled
                a_vectors = [splat(builder.load(builder.gep(a_data, [ir.Constant(word, x)])))
                             for x in range(_UNROLLED_HALF)]
                a_chunk = splat(builder.load(a_bytes))

                def unrolled_second_half(group_words):  # type: ignore[no-untyped-def]
                    rest = [splat(builder.load(builder.gep(a_data, [ir.Constant(word, x)])))
                            for x in range(_UNROLLED_HALF, 2 * _UNROLLED_HALF)]
                    builder.store(builder.add(builder.load(total), unrolled_counts(
                        rest, group_words, _UNROLLED_HALF)), total)

                def groups_tested_after(counted: int) -> None:
                    """The loop over the groups, the first test after ``counted`` words.
                    The chunk's bytes (``_rest_word_counts``) bound the words from there
                    on: all of them at that test, byte 0 (the words before the half) left
                    out at the half-way test."""
                    after_half = ir.Constant(vector, [-1 << 8] * LANES)
                    with cgutils.for_range(builder, groups) as loop:
                        g = builder.add(loop.index, first_value)
                        group_words = builder.mul(g, builder.mul(width, lanes))
                        counts = unrolled_counts(a_vectors[:counted], group_words, 0)
                        b_chunk = builder.load(builder.bitcast(
                            builder.gep(b_bytes_data, [builder.mul(g, lanes)]),
                            vector.as_pointer()), align=8)
                        least_bytes = _least_bytes(builder, a_chunk, b_chunk)
                        if counted == _UNROLLED_HALF:
                            builder.store(counts, total)
                            builder.store(builder.add(counts, _byte_sums(
                                builder, least_bytes)), bound)
                            finish(g, group_words, unrolled_second_half)
                            return
                        early = builder.add(counts, _byte_sums(builder, least_bytes))
                        alive = builder.bitcast(builder.icmp_signed(
                            ">=", early, splat(group_least(g))), mask_type)
                        with builder.if_then(builder.icmp_unsigned("!=", alive, none),
                                             likely=False):
                            counts = builder.add(counts, unrolled_counts(
                                a_vectors[counted:], group_words, counted))
                            builder.store(counts, total)
                            builder.store(builder.add(counts, _byte_sums(
                                builder, builder.and_(least_bytes, after_half))), bound)
                            finish(g, group_words, unrolled_second_half)

                for counted in EARLY_TESTS[:-1]:
                    with builder.if_then(builder.icmp_signed(
                            "==", early_value, ir.Constant(word, counted))):
                        groups_tested_after(counted)
                with builder.if_then(builder.icmp_signed(
                        ">=", early_value, ir.Constant(word, EARLY_TESTS[-1]))):
                    groups_tested_after(EARLY_TESTS[-1])
            with other, cgutils.for_range(builder, groups) as loop:
                g = builder.add(loop.index, first_value)
                group_words = builder.mul(g, builder.mul(width, lanes))
                builder.store(ir.Constant(vector, None), total)
                _add_group_counts(builder, total, a_data, b_data, group_words, half_value)
                builder.store(builder.load(total), bound)
                _add_rest_bounds(builder, bound, a_bytes, builder.gep(
                    b_bytes_data, [builder.mul(g, builder.mul(chunks, lanes))]), chunks)
                finish(g, group_words, generic_second_half)
        builder.store(builder.add(builder.load(completed_data), builder.load(full)),
                      completed_data)
        return builder.load(found)

    signature = types.int64(a_words, types.int64, a_bytes, types.int64, b_lanes, b_bytes,
                            b_low_pops, b_pops, needed, least_needed, types.int64, types.int64,
                            window, types.int64, types.int64, passing, passing_counts,
                            passing_lanes,
                            completed)
    return signature, codegen


@numba.njit(cache=True, nogil=True, inline="always")
def _byte_of(word: int, half: int, early: int) -> int:  # pragma: no cover
    """Which byte of a row's chunks bounds ``word`` (-1: none, the word is counted before
    the first test). Tested first at the half, one byte a word from there on. Tested first
    after ``early`` < ``half`` words (1024-bit CLKs, 16 words, only), one chunk: [words
    ``early`` to 7, 8, ..., 13, 14-15], bytes summing two words' popcounts (at most 128): the
    bound at the first test as tight as one byte a word, and at the half-way test only a
    little weaker over the last two words."""
    if early < half:
        if word < early:
            return -1
        return 0 if word < half else min(word - half + 1, 7)
    return word - half if word >= half else -1


@numba.njit(cache=True, nogil=True)
def _rest_word_counts(words: np.ndarray, half: int,
                      early: int) -> np.ndarray:  # pragma: no cover
    """Popcounts of each row's words after the first test (``_byte_of``), packed in bytes,
    eight to a uint64: (rows, chunks)."""
    rows, width = words.shape
    chunks = (width - half + 7) // 8
    out = np.zeros((rows, chunks), dtype=np.uint64)
    for r in range(rows):
        for x in range(width):
            j = _byte_of(x, half, early)
            if j >= 0:
                count: int = popcount64(words[r, x])  # type: ignore[call-arg]
                out[r, j // 8] += np.uint64(count) << np.uint64(8 * (j % 8))
    return out


@numba.njit(cache=True, nogil=True)
def _lane_rest_word_counts(b_lanes: np.ndarray, first: int, stop: int, half: int,
                           early: int) -> np.ndarray:  # pragma: no cover
    """``_rest_word_counts`` of lane groups [first, stop): (groups, chunks, 8), lanes last so
    that one vector load holds a chunk of eight rows."""
    width = b_lanes.shape[1]
    chunks = (width - half + 7) // 8
    out = np.zeros((stop - first, chunks, LANES), dtype=np.uint64)
    for g in range(first, stop):
        for x in range(width):
            j = _byte_of(x, half, early)
            if j >= 0:
                for lane in range(LANES):
                    count: int = popcount64(b_lanes[g, x, lane])  # type: ignore[call-arg]
                    out[g - first, j // 8, lane] += np.uint64(count) << np.uint64(8 * (j % 8))
    return out


def least_counts(needed: np.ndarray) -> np.ndarray:
    """For each popcount sum s, the least count any sum >= s needs: a lower bound for every
    row of a group from its first (smallest) popcount."""
    return np.minimum.accumulate(needed[::-1])[::-1].copy()


@dataclass(frozen=True)
class LaneSide:
    """B prepared for ``lane_tile_pairs``: popcount-sorted rows in lane groups, and per row
    (padding included) popcount; per group its least popcount."""

    lanes: np.ndarray
    pops: np.ndarray
    low_pops: np.ndarray

    @classmethod
    def of(cls, sorted_words: np.ndarray, sorted_pops: np.ndarray) -> LaneSide:
        lanes = lane_layout(sorted_words)
        pops = np.zeros(len(lanes) * LANES, dtype=np.int64)
        pops[:len(sorted_pops)] = sorted_pops
        # The least popcount of each group's real rows: rows sorted by block and then popcount
        # (a blocked run) are not sorted across a block's end within a group.
        least = np.full(len(pops), np.iinfo(np.int64).max, dtype=np.int64)
        least[:len(sorted_pops)] = sorted_pops
        return cls(lanes, pops, least.reshape(-1, LANES).min(axis=1))


def lane_layout(words: np.ndarray) -> np.ndarray:
    """Rows (n, w) as groups of eight (ceil(n / 8), w, 8), the last padded with zero rows."""
    rows, width = words.shape
    padded = np.zeros((-(-rows // LANES) * LANES, width), dtype=np.uint64)
    padded[:rows] = words
    return np.ascontiguousarray(padded.reshape(-1, LANES, width).transpose(0, 2, 1))


@numba.njit(cache=True, nogil=True)
def lane_tile_pairs(a_words: np.ndarray, a_pops: np.ndarray, a_index: np.ndarray,
                    b_lanes: np.ndarray, b_pops: np.ndarray, b_low_pops: np.ndarray,
                    b_index: np.ndarray,
                    starts: np.ndarray, stops: np.ndarray, needed: np.ndarray,
                    least_needed: np.ndarray, out_a: np.ndarray, out_b: np.ndarray,
                    out_count: np.ndarray,
                    early: int = _UNROLLED_HALF) -> tuple[int, int, int]:  # pragma: no cover
    """Every pair (A row r, sorted B row k in [starts[r], stops[r])) whose AND popcount
    reaches needed[a + b], as (a_index, b_index, count). Returns (pairs found, pairs whose
    first half was compared, pairs compared in full), or (-1, 0, 0) if the output is too
    small. B's arrays are those of ``LaneSide``; ``least_needed`` is ``least_counts(needed)``.
    The bound on the words after the first test is counted here per word from the words
    themselves (tighter than second-half popcounts). ``early`` (one of ``EARLY_TESTS``): the
    words counted before the first test, for 1024-bit CLKs (others test at the half).
    """
    half = a_words.shape[1] // 2
    if half != _UNROLLED_HALF:
        early = half
    found = 0
    visited = 0
    capacity = out_a.shape[0]
    rows = a_words.shape[0]
    if rows == 0:
        return 0, 0, 0
    passing = np.empty(_B_BLOCK_GROUPS, dtype=np.int64)
    passing_counts = np.empty((_B_BLOCK_GROUPS, LANES), dtype=np.int64)
    passing_lanes = np.empty(_B_BLOCK_GROUPS, dtype=np.int64)
    completed_box = np.zeros(1, dtype=np.int64)
    lowest = starts.min() // LANES
    highest = (stops.max() + LANES - 1) // LANES
    a_bytes = _rest_word_counts(a_words, half, early)
    b_bytes = _lane_rest_word_counts(b_lanes, lowest, highest, half, early)
    # The tile's groups from ``lowest`` on (views made once, not per row and block).
    tile_lanes, tile_low_pops = b_lanes[lowest:], b_low_pops[lowest:]
    tile_pops = b_pops[lowest * LANES:]
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
            groups: int = passing_groups(  # type: ignore[call-arg]
                a_words, r, a_bytes, a_pop, tile_lanes, b_bytes, tile_low_pops, tile_pops,
                needed, least_needed, first - lowest, last - lowest,
                (start - lowest * LANES, stop - lowest * LANES), half, early, passing,
                passing_counts,
                passing_lanes, completed_box)
            for s in range(groups):
                base = (passing[s] + lowest) * LANES
                for lane in range(LANES):
                    if passing_lanes[s] >> lane & 1:
                        if found == capacity:
                            return -1, 0, 0
                        out_a[found] = a_index[r]
                        out_b[found] = b_index[base + lane]
                        out_count[found] = passing_counts[s, lane]
                        found += 1
    return found, visited, completed_box[0]
