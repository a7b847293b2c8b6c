"""The GPU backend: AND counts of CLK pairs as matrix products of their 0/1 bit matrices.

For 0/1 matrices, ``A @ B.T`` counts the bits each pair shares, exactly: every product is 0
or 1 and every partial sum an integer no greater than the CLK length, which float16 holds
exactly up to 2048 (float32 beyond), so CLKs of up to 2048 bits are multiplied in float16 on
tensor cores and their counts written in float16, two bytes a pair. The threshold is then
applied on the device in one pass over the counts (count >= needed[a + b], the base's exact
table, within each row's popcount window) and only the passing pairs are copied back.

B is unpacked once per plan and held on the device when it fits in a quarter of the free
memory (10M 1024-bit CLKs: 20 GB), else held packed (l/8 bytes a row), else copied block by
block; a tile's memory is its product, ``tile_rows`` x ``block_rows`` counts, whatever the
sizes.

``MatrixBackend`` is written against CuPy's NumPy-compatible API, so the same code runs on
NumPy (``MatrixBackend(numpy)``): the tests check it against the CPU backend there. On a GPU
the pass over the counts is one CUDA kernel (``_SELECT_SOURCE``) instead of NumPy's masks.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from .base import Backend
from .registry import BackendUnavailableError
from .types import PairArrays, Plan

__all__ = ["GpuBackend", "MatrixBackend"]

_UNPACK_ROWS = 1 << 18  # B rows unpacked at once when it is held unpacked (a bounded peak)


@dataclass(frozen=True)
class _Device:
    """A plan's arrays on the device: B unpacked (or None), B packed (or None: copied per
    block), popcounts, the table of least counts, the dtype of the products."""

    b_bits: Any
    b_words: Any
    b_pops: Any
    a_pops: Any
    needed: Any
    dtype: Any


@dataclass(frozen=True)
class _TileRows:
    """One tile's A rows on the device: popcounts and the bounds of their windows in B."""

    a_pops: Any
    starts: Any
    stops: Any


class _MaskPicker:
    """Passing pairs found with array operations, block by block (NumPy: the check of the
    GPU code's arithmetic)."""

    def __init__(self, xp: ModuleType, prepared: _Device, tile: _TileRows) -> None:
        self.xp, self.prepared, self.tile = xp, prepared, tile
        self.parts: list[tuple[Any, Any, Any]] = []

    def add(self, shared: Any, block: int) -> None:
        xp, tile = self.xp, self.tile
        end = block + shared.shape[1]
        column = xp.arange(block, end, dtype=xp.int64)[None, :]
        sums = tile.a_pops[:, None] + self.prepared.b_pops[block:end][None, :]
        keep = ((shared.astype(xp.int32) >= self.prepared.needed[sums])
                & (column >= tile.starts[:, None]) & (column < tile.stops[:, None]))
        rows, cols = xp.nonzero(keep)
        self.parts.append((rows, cols + block, shared[rows, cols]))

    def found(self) -> tuple[Any, Any, Any] | None:
        if not self.parts:
            none = self.xp.zeros(0, dtype=self.xp.int64)
            return none, none, none
        return tuple(self.xp.concatenate(p) for p in zip(*self.parts, strict=True))  # type: ignore[return-value]


class MatrixBackend(Backend):
    """Tiles of A against blocks of B as bit-matrix products, on the array module ``xp``
    (CuPy on a GPU; NumPy to check the code where there is none).

    Args:
        xp: the array module.
        tile_rows: A rows per product.
        block_rows: B rows per product (with ``tile_rows``, the memory of one product:
            tile_rows x block_rows counts).
        half: float16 products where exact (CLKs of up to 2048 bits), else float32.
        held_bytes: the most bytes B may take on the device for a whole plan (None: no
            limit but the device's); beyond it B is copied block by block.
    """

    name = "matrix"

    def __init__(self, xp: ModuleType, tile_rows: int = 4096, block_rows: int = 1 << 15,
                 half: bool = False, held_bytes: int | None = None) -> None:
        super().__init__(tile_rows)
        self.xp = xp
        self.block_rows = block_rows
        self.half = half
        self.held_bytes = held_bytes

    def _fits(self, nbytes: int) -> bool:
        """Whether an array of ``nbytes`` may stay on the device for the whole plan."""
        return self.held_bytes is None or nbytes <= self.held_bytes

    def _prepare(self, plan: Plan) -> _Device:
        xp = self.xp
        bits = plan.b_words.shape[1] * 64
        dtype = xp.float16 if self.half and bits <= 2048 else xp.float32
        b_bits = b_words = None
        if self._fits(len(plan.b_pops) * bits * np.dtype(dtype).itemsize):
            b_bits = xp.empty((len(plan.b_pops), bits), dtype=dtype)
            for start in range(0, len(plan.b_pops), _UNPACK_ROWS):
                chunk = plan.b_words[start:start + _UNPACK_ROWS]
                b_bits[start:start + len(chunk)] = self._bits(xp.asarray(chunk), dtype)
        elif self._fits(plan.b_words.nbytes):
            b_words = xp.asarray(plan.b_words)
        return _Device(b_bits, b_words, xp.asarray(plan.b_pops, dtype=xp.int32),
                       xp.asarray(plan.a_pops, dtype=xp.int32),
                       xp.asarray(plan.needed, dtype=xp.int32), dtype)

    def _bits(self, words: Any, dtype: Any) -> Any:
        """Packed rows (n, w) uint64 as 0/1 (n, 64w) in ``dtype`` (bit order is the same for
        both sides, which is all a count needs)."""
        xp = self.xp
        rows = words.shape[0]
        raw = xp.ascontiguousarray(words).view(xp.uint8).reshape(-1)
        return xp.unpackbits(raw).reshape(rows, -1).astype(dtype)

    def _a_bits(self, prepared: _Device, plan: Plan, first: int, last: int) -> Any:
        """The tile's A rows unpacked; within one set they are B's rows, maybe held already."""
        if plan.same and prepared.b_bits is not None:
            return prepared.b_bits[first:last]
        return self._bits(self.xp.asarray(plan.a_words[first:last]), prepared.dtype)

    def _b_bits(self, prepared: _Device, plan: Plan, block: int, end: int) -> Any:
        if prepared.b_bits is not None:
            return prepared.b_bits[block:end]
        words = (prepared.b_words[block:end] if prepared.b_words is not None
                 else self.xp.asarray(plan.b_words[block:end]))
        return self._bits(words, prepared.dtype)

    def _picker(self, prepared: _Device, tile: _TileRows, capacity: int) -> Any:
        """What collects a tile's passing pairs, block by block (``add``, then ``found``)."""
        return _MaskPicker(self.xp, prepared, tile)

    def _tile(self, prepared: _Device, plan: Plan, first: int, last: int,
              capacity: int) -> PairArrays | None:
        """Every window pair of the tile is counted (the matrix product cannot stop
        halfway), so visited = completed = the pairs in the windows; None when more than
        ``capacity`` pass and the picker keeps no more."""
        xp = self.xp
        starts, stops = plan.starts[first:last], plan.stops[first:last]
        lo, hi = int(starts.min()), int(stops.max())
        window = int((stops - starts).sum())
        if hi <= lo:
            return PairArrays.empty()
        a_bits = self._a_bits(prepared, plan, first, last)
        tile = _TileRows(prepared.a_pops[first:last], xp.asarray(starts), xp.asarray(stops))
        picker = self._picker(prepared, tile, capacity)
        for block in range(lo, hi, self.block_rows):
            end = min(block + self.block_rows, hi)
            picker.add(a_bits @ self._b_bits(prepared, plan, block, end).T, block)
        found = picker.found()
        if found is None:
            return None
        rows, cols, counts = (self._host(x) for x in found)
        return PairArrays(plan.a_index[first + rows], plan.b_index[cols], counts, window,
                          window)

    def _host(self, values: Any) -> np.ndarray:
        return np.asarray(values, dtype=np.int64)


# One thread per count in a row's window; rows spread over the grid's y. count_t is the
# products' element type and COUNT its integer value: with HALF_COUNTS, float16 counts read
# as their bits (integers up to 2048 have exponent e >= 15 and value (1024 + mantissa) *
# 2^(e - 25)), which needs no CUDA header; else float32. A passing pair takes the next slot;
# slots past ``capacity`` are only counted, so the caller knows to retry with more.
_SELECT_SOURCE = r"""
#ifdef HALF_COUNTS
typedef unsigned short count_t;
#define COUNT(value) half_count(value)
#else
typedef float count_t;
#define COUNT(value) ((int)(value))
#endif
__device__ __forceinline__ int half_count(unsigned short h) {
    const int e = (h >> 10) & 31, m = 1024 + (h & 1023);
    if (e == 0) return 0;
    return e >= 25 ? m << (e - 25) : m >> (25 - e);
}
extern "C" __global__ void pprl_select(
        const count_t* shared, const int rows, const int cols, const long long block,
        const int* a_pops, const int* b_pops, const long long* starts,
        const long long* stops, const int* needed, int* out_rows, long long* out_cols,
        int* out_counts, unsigned long long* found, const unsigned long long capacity) {
    for (int row = blockIdx.y; row < rows; row += gridDim.y) {
        long long first = starts[row] - block, last = stops[row] - block;
        if (first < 0) first = 0;
        if (last > cols) last = cols;
        const int a_pop = a_pops[row];
        const count_t* line = shared + (long long)row * cols;
        for (long long c = first + (long long)blockIdx.x * blockDim.x + threadIdx.x;
             c < last; c += (long long)gridDim.x * blockDim.x) {
            const int count = COUNT(line[c]);
            const long long column = block + c;
            if (count >= needed[a_pop + b_pops[column]]) {
                const unsigned long long slot = atomicAdd(found, 1ULL);
                if (slot < capacity) {
                    out_rows[slot] = row;
                    out_cols[slot] = column;
                    out_counts[slot] = count;
                }
            }
        }
    }
}
"""
_THREADS = 256
_GRID_X = 32  # blocks across a row's window: 8,192 threads, 8 counts each at 65,536 columns
_GRID_Y = 65535  # the most CUDA allows; more rows loop


class _KernelPicker:
    """Passing pairs written by ``pprl_select`` into buffers of ``capacity`` pairs; the count
    of passing pairs is read back once per tile."""

    def __init__(self, cupy: ModuleType, kernel: Any, prepared: _Device, tile: _TileRows,
                 capacity: int) -> None:
        self.cupy, self.kernel, self.prepared, self.tile = cupy, kernel, prepared, tile
        self.capacity = capacity
        self.rows = cupy.empty(capacity, dtype=cupy.int32)
        self.cols = cupy.empty(capacity, dtype=cupy.int64)
        self.counts = cupy.empty(capacity, dtype=cupy.int32)
        self.passing = cupy.zeros(1, dtype=cupy.uint64)

    def add(self, shared: Any, block: int) -> None:
        cp, tile, prepared = self.cupy, self.tile, self.prepared
        rows, cols = shared.shape
        values = shared.view(cp.uint16) if shared.dtype == cp.float16 else shared
        self.kernel((_GRID_X, min(rows, _GRID_Y)), (_THREADS,), (
            values, np.int32(rows), np.int32(cols), np.int64(block), tile.a_pops,
            prepared.b_pops, tile.starts, tile.stops, prepared.needed, self.rows, self.cols,
            self.counts, self.passing, np.uint64(self.capacity)))

    def found(self) -> tuple[Any, Any, Any] | None:
        passing = int(self.passing.get()[0])
        if passing > self.capacity:
            return None
        return self.rows[:passing], self.cols[:passing], self.counts[:passing]


class GpuBackend(MatrixBackend):
    """``MatrixBackend`` on a CUDA GPU with CuPy: float16 products on tensor cores, the
    threshold applied by one kernel.

    Args:
        device: the CUDA device number.
        tile_rows: A rows per product.
        block_rows: B rows per product.
        held_bytes: the most bytes B may take on the device for a whole plan (None: a
            quarter of the free memory).

    Raises:
        BackendUnavailableError: CuPy finds no CUDA device.
    """

    name = "gpu"

    def __init__(self, device: int = 0, tile_rows: int = 8192, block_rows: int = 1 << 16,
                 held_bytes: int | None = None) -> None:
        cupy = importlib.import_module("cupy")
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except cupy.cuda.runtime.CUDARuntimeError as e:
            raise BackendUnavailableError(f"backend 'gpu': CUDA is not usable here ({e})"
                                          ) from e
        if device >= count:
            raise BackendUnavailableError(
                f"backend 'gpu': no CUDA device {device} (this machine has {count})")
        cupy.cuda.Device(device).use()
        # float16 sums of 0/1 products are exact to 2048 however they are accumulated, so
        # CUPY_TF16 (float16 accumulation) changes nothing; float16 is always used.
        super().__init__(cupy, tile_rows, block_rows, half=True, held_bytes=held_bytes)
        self.device = device
        self._kernels = {
            dtype: cupy.RawKernel(_SELECT_SOURCE, "pprl_select", options=options)
            for dtype, options in ((cupy.float16, ("-DHALF_COUNTS",)), (cupy.float32, ()))}

    def describe(self) -> dict[str, Any]:
        name = self.xp.cuda.runtime.getDeviceProperties(self.device)["name"]
        return {"backend": self.name, "device": name.decode() if isinstance(name, bytes)
                else str(name)}

    def _picker(self, prepared: _Device, tile: _TileRows, capacity: int) -> _KernelPicker:
        return _KernelPicker(self.xp, self._kernels[prepared.dtype], prepared, tile, capacity)

    def _fits(self, nbytes: int) -> bool:
        free, _ = self.xp.cuda.runtime.memGetInfo()
        return super()._fits(nbytes) and nbytes <= free // 4

    def _host(self, values: Any) -> np.ndarray:
        return np.asarray(self.xp.asnumpy(values), dtype=np.int64)

    def close(self) -> None:
        self.xp.get_default_memory_pool().free_all_blocks()
