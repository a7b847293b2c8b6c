"""The GPU backend: AND counts of CLK pairs as matrix products of their 0/1 bit matrices.

For 0/1 matrices, ``A @ B.T`` counts the bits each pair shares, exactly: every product is 0
or 1 and every partial sum an integer no greater than the CLK length, which float16 holds
exactly up to 2048 (float32 beyond). CLKs of up to 2048 bits are multiplied on tensor cores
in float8 (PyTorch's ``_scaled_mm``, float32 accumulation; 0 and 1 are exact in e4m3) where
PyTorch runs it, else float16 (CuPy), and their counts written in float16, two bytes a pair.
The threshold is then applied on the device in one pass over the counts (count >=
needed[a + b], the base's exact table, within each row's popcount window) and only the
passing pairs are copied back.

B is unpacked once per plan and held on the device when it fits in a quarter of the free
memory (10M 1024-bit CLKs: 10 GB in float8, 20 GB in float16), else held packed (l/8 bytes a
row), else copied block by block; a tile's memory is its product, ``tile_rows`` x
``block_rows`` counts, whatever the sizes.

``MatrixBackend`` is written against CuPy's NumPy-compatible API, so the same code runs on
NumPy (``MatrixBackend(numpy)``): the tests check it against the CPU backend there. On a GPU
the pass over the counts is one CUDA kernel (``_SELECT_SOURCE``) instead of NumPy's masks.
Measured on an H200: ``benchmarks/bench_gpu.py``, BENCHMARKS.md.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from .base import Backend
from .registry import BackendUnavailableError
from .types import PairArrays, Plan

__all__ = ["GpuBackend", "MatrixBackend"]

log = logging.getLogger(__name__)
_UNPACK_ROWS = 1 << 18  # B rows unpacked at once when it is held unpacked (a bounded peak)
# B held unpacked has its rows padded to a multiple of this (zero rows, outside every window),
# and blocks start and end on it: float8 products need both dimensions of B to be multiples
# of 16, and the threshold kernel reads counts four at a time.
_ALIGN = 16
_FLOAT8_ONE = 0x38  # 1.0 in float8 e4m3 (exponent bias 7, no mantissa)


@dataclass(frozen=True)
class _Device:
    """A plan's arrays on the device: B unpacked (or None), B packed (or None: copied per
    block), popcounts, the table of least counts, the element type of the unpacked bits."""

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
            tile_rows x block_rows counts), rounded up to a multiple of 16.
        half: float16 products where exact (CLKs of up to 2048 bits), else float32.
        held_bytes: the most bytes B may take on the device for a whole plan (None: no
            limit but the device's); beyond it B is copied block by block.
    """

    name = "matrix"

    def __init__(self, xp: ModuleType, tile_rows: int = 4096, block_rows: int = 1 << 15,
                 half: bool = False, held_bytes: int | None = None) -> None:
        super().__init__(tile_rows)
        self.xp = xp
        self.block_rows = -(-block_rows // _ALIGN) * _ALIGN
        self.half = half
        self.held_bytes = held_bytes

    def _fits(self, nbytes: int) -> bool:
        """Whether an array of ``nbytes`` may stay on the device for the whole plan."""
        return self.held_bytes is None or nbytes <= self.held_bytes

    def _dtype(self, bits: int, held: bool) -> Any:
        """The element type of unpacked bits: float16 where exact, else float32 (``held``:
        for B held whole, which a GPU may store otherwise)."""
        return self.xp.float16 if self.half and bits <= 2048 else self.xp.float32

    def _prepare(self, plan: Plan) -> _Device:
        xp = self.xp
        bits = plan.b_words.shape[1] * 64
        rows = len(plan.b_pops)
        dtype = self._dtype(bits, held=True)
        padded = -(-rows // _ALIGN) * _ALIGN
        b_bits = b_words = None
        if self._fits(padded * bits * np.dtype(dtype).itemsize):
            b_bits = xp.zeros((padded, bits), dtype=dtype)
            for start in range(0, rows, _UNPACK_ROWS):
                chunk = plan.b_words[start:start + _UNPACK_ROWS]
                b_bits[start:start + len(chunk)] = self._bits(xp.asarray(chunk), dtype)
        else:
            dtype = self._dtype(bits, held=False)
            if self._fits(plan.b_words.nbytes):
                b_words = xp.asarray(plan.b_words)
        b_pops = xp.zeros(padded, dtype=xp.int32)  # padded rows: popcount 0, in no window
        b_pops[:rows] = xp.asarray(plan.b_pops, dtype=xp.int32)
        return _Device(b_bits, b_words, b_pops, xp.asarray(plan.a_pops, dtype=xp.int32),
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

    def _product(self, a_bits: Any, b_bits: Any) -> Any:
        """The AND counts of every pair of rows of two unpacked blocks."""
        return a_bits @ b_bits.T

    def _picker(self, prepared: _Device, tile: _TileRows, capacity: int) -> Any:
        """What collects a tile's passing pairs, block by block (``add``, then ``found``)."""
        return _MaskPicker(self.xp, prepared, tile)

    def _blocks(self, prepared: _Device, lo: int, hi: int) -> list[tuple[int, int]]:
        """B's rows [lo, hi) in blocks; aligned on ``_ALIGN`` where B is held (padded)."""
        if prepared.b_bits is not None:
            lo, hi = lo - lo % _ALIGN, -(-hi // _ALIGN) * _ALIGN
        return [(block, min(block + self.block_rows, hi))
                for block in range(lo, hi, self.block_rows)]

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
        for block, end in self._blocks(prepared, lo, hi):
            picker.add(self._product(a_bits, self._b_bits(prepared, plan, block, end)), block)
        found = picker.found()
        if found is None:
            return None
        rows, cols, counts = (self._host(x) for x in found)
        return PairArrays(plan.a_index[first + rows], plan.b_index[cols], counts, window,
                          window)

    def _host(self, values: Any) -> np.ndarray:
        return np.asarray(values, dtype=np.int64)


# Threads spread over a row's window, rows over the grid's y. count_t is the products'
# element type and COUNT its integer value: with HALF_COUNTS, float16 counts read as their
# bits (integers up to 2048 have exponent e >= 15 and value (1024 + mantissa) * 2^(e - 25)),
# which needs no CUDA header, four at a time where a row's counts are 8-byte aligned; else
# float32. B is sorted by popcount within a window and ``needed`` grows with the popcount sum,
# so the window's first column in a block needs the least: counts below that bound (compared
# as bits: non-negative float16 values order as their bits do) are dropped without reading
# B's popcount. A passing pair takes the next slot; slots past ``capacity`` are only counted,
# so the caller knows to retry with more.
_SELECT_SOURCE = r"""
__device__ __forceinline__ int half_count(unsigned short h) {
    const int e = (h >> 10) & 31, m = 1024 + (h & 1023);
    if (e == 0) return 0;
    return e >= 25 ? m << (e - 25) : m >> (25 - e);
}
__device__ __forceinline__ unsigned short half_bits(int n) {
    if (n <= 0) return 0;
    if (n > 2048) return 0x7c00;  /* infinity: no count reaches it */
    const int e = 31 - __clz(n);
    const int m = e <= 10 ? (n << (10 - e)) & 1023 : (n >> (e - 10)) & 1023;
    return (unsigned short)(((e + 15) << 10) | m);
}
#ifdef HALF_COUNTS
typedef unsigned short count_t;
#define COUNT(value) half_count(value)
#define BOUND(n) half_bits(n)
#else
typedef float count_t;
#define COUNT(value) ((int)(value))
#define BOUND(n) ((float)(n))
#endif
__device__ __forceinline__ void keep(
        const int row, const long long column, const int count, const int a_pop,
        const int* b_pops, const int* needed, int* out_rows, long long* out_cols,
        int* out_counts, unsigned long long* found, const unsigned long long capacity) {
    if (count >= needed[a_pop + b_pops[column]]) {
        const unsigned long long slot = atomicAdd(found, 1ULL);
        if (slot < capacity) {
            out_rows[slot] = row;
            out_cols[slot] = column;
            out_counts[slot] = count;
        }
    }
}
extern "C" __global__ void pprl_select(
        const count_t* shared, const int rows, const int cols, const long long block,
        const int* a_pops, const int* b_pops, const long long* starts,
        const long long* stops, const int* needed, int* out_rows, long long* out_cols,
        int* out_counts, unsigned long long* found, const unsigned long long capacity) {
    const long long step = (long long)gridDim.x * blockDim.x;
    const long long thread = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    for (int row = blockIdx.y; row < rows; row += gridDim.y) {
        long long first = starts[row] - block, last = stops[row] - block;
        if (first < 0) first = 0;
        if (last > cols) last = cols;
        if (first >= last) continue;
        const int a_pop = a_pops[row];
        const count_t least = BOUND(needed[a_pop + b_pops[block + first]]);
        const count_t* line = shared + (long long)row * cols;
#ifdef HALF_COUNTS
        if ((cols & 3) == 0) {
            const unsigned long long* quads = (const unsigned long long*)line;
            for (long long q = (first >> 2) + thread; q <= ((last - 1) >> 2); q += step) {
                const unsigned long long four = quads[q];
                for (int j = 0; j < 4; j++) {
                    const unsigned short h = (unsigned short)(four >> (16 * j));
                    const long long c = 4 * q + j;
                    if (h >= least && c >= first && c < last)
                        keep(row, block + c, half_count(h), a_pop, b_pops, needed, out_rows,
                             out_cols, out_counts, found, capacity);
                }
            }
            continue;
        }
#endif
        for (long long c = first + thread; c < last; c += step) {
            const count_t value = line[c];
            if (value >= least)
                keep(row, block + c, COUNT(value), a_pop, b_pops, needed, out_rows,
                     out_cols, out_counts, found, capacity);
        }
    }
}
"""
_THREADS = 256
_GRID_X = 32  # blocks across a row's window: 8,192 threads, 8 counts each at 65,536 columns
_GRID_Y = 65535  # the most CUDA allows; more rows loop


class _KernelPicker:
    """Passing pairs written by ``pprl_select`` (one compiled kernel per count type, in
    ``kernels``) into buffers of ``capacity`` pairs; the count of passing pairs is read back
    once per tile."""

    def __init__(self, xp: ModuleType, kernels: dict[Any, Any], prepared: _Device,
                 tile: _TileRows, capacity: int) -> None:
        self.xp, self.kernels, self.prepared, self.tile = xp, kernels, prepared, tile
        self.capacity = capacity
        self.rows = xp.empty(capacity, dtype=xp.int32)
        self.cols = xp.empty(capacity, dtype=xp.int64)
        self.counts = xp.empty(capacity, dtype=xp.int32)
        self.passing = xp.zeros(1, dtype=xp.uint64)

    def add(self, shared: Any, block: int) -> None:
        xp, tile, prepared = self.xp, self.tile, self.prepared
        rows, cols = shared.shape
        values = shared.view(xp.uint16) if shared.dtype == xp.float16 else shared
        self.kernels[shared.dtype]((_GRID_X, min(rows, _GRID_Y)), (_THREADS,), (
            values, np.int32(rows), np.int32(cols), np.int64(block), tile.a_pops,
            prepared.b_pops, tile.starts, tile.stops, prepared.needed, self.rows, self.cols,
            self.counts, self.passing, np.uint64(self.capacity)))

    def found(self) -> tuple[Any, Any, Any] | None:
        passing = int(self.passing[0])
        if passing > self.capacity:
            return None
        return self.rows[:passing], self.cols[:passing], self.counts[:passing]


class _Float8Product:
    """Products of 0/1 bytes holding float8 e4m3 values with PyTorch's ``_scaled_mm`` on
    CuPy arrays (shared through DLPack, no copies), counts in float16."""

    def __init__(self, torch: ModuleType, cupy: ModuleType, device: int) -> None:
        self.torch, self.cupy = torch, cupy
        self.one = torch.ones((), device=f"cuda:{device}", dtype=torch.float32)

    def __call__(self, a_bytes: Any, b_bytes: Any) -> Any:
        torch = self.torch
        rows = a_bytes.shape[0]
        # PyTorch documents multiples of 16 for B's dimensions only; A's rows are padded too,
        # a precaution that costs a copy of the last tile (run so on the H200's tests).
        if rows % _ALIGN:
            padded = self.cupy.zeros((rows + _ALIGN - rows % _ALIGN, a_bytes.shape[1]),
                                     dtype=a_bytes.dtype)
            padded[:rows] = a_bytes
            return self(padded, b_bytes)[:rows]
        a = torch.from_dlpack(a_bytes).view(torch.float8_e4m3fn)
        b = torch.from_dlpack(b_bytes).view(torch.float8_e4m3fn)
        counts = torch._scaled_mm(a, b.t(), scale_a=self.one, scale_b=self.one,
                                  out_dtype=torch.float16)
        return self.cupy.from_dlpack(counts)


def _float8_product(cupy: ModuleType, device: int) -> _Float8Product | None:
    """PyTorch's float8 product where PyTorch is installed, runs it on this GPU (compute
    capability 8.9 or later) and counts exactly on a small random product; else None."""
    if importlib.util.find_spec("torch") is None:
        return None
    torch = importlib.import_module("torch")
    try:
        if not hasattr(torch, "_scaled_mm") or torch.cuda.get_device_capability(device) < (8, 9):
            return None
        product = _Float8Product(torch, cupy, device)
        rng = cupy.random.RandomState(0)
        a = (rng.random_sample((32, 128)) < 0.5).astype(cupy.uint8)
        b = (rng.random_sample((48, 128)) < 0.5).astype(cupy.uint8)
        counts = product(a * _FLOAT8_ONE, b * _FLOAT8_ONE).astype(cupy.float32)
        if bool((counts == a.astype(cupy.float32) @ b.astype(cupy.float32).T).all()):
            return product
        log.warning("backend 'gpu': PyTorch's float8 product miscounts here; using float16")
    except (RuntimeError, TypeError, AttributeError) as e:  # this PyTorch or GPU lacks it
        log.info("backend 'gpu': no float8 products (%s); using float16", e)
    return None


class GpuBackend(MatrixBackend):
    """``MatrixBackend`` on a CUDA GPU with CuPy: float8 (PyTorch) or float16 products on
    tensor cores, the threshold applied by one kernel.

    Args:
        device: the CUDA device number.
        tile_rows: A rows per product.
        block_rows: B rows per product.
        held_bytes: the most bytes B may take on the device for a whole plan (None: a
            quarter of the free memory).
        product: ``float8`` (needs PyTorch and a GPU of compute capability 8.9 or later;
            used for B held on the device), ``float16``, or ``auto``: float8 where it runs.

    Raises:
        BackendUnavailableError: CuPy finds no CUDA device, or float8 was asked for and
            cannot run.
    """

    name = "gpu"

    def __init__(self, device: int = 0, tile_rows: int = 8192, block_rows: int = 1 << 16,
                 held_bytes: int | None = None, product: str = "auto") -> None:
        if product not in ("auto", "float8", "float16"):
            raise ValueError(f"unknown product {product!r}: choose from auto, float8, float16")
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
        # CUPY_TF16 (float16 accumulation) changes nothing.
        super().__init__(cupy, tile_rows, block_rows, half=True, held_bytes=held_bytes)
        self.device = device
        self._float8 = None if product == "float16" else _float8_product(cupy, device)
        if product == "float8" and self._float8 is None:
            raise BackendUnavailableError(
                "backend 'gpu': float8 products need PyTorch (pip install torch) and a GPU of "
                "compute capability 8.9 or later")
        self.product = "float16" if self._float8 is None else "float8"
        self._kernels = {
            np.dtype(dtype): cupy.RawKernel(_SELECT_SOURCE, "pprl_select", options=options)
            for dtype, options in ((np.float16, ("-DHALF_COUNTS",)), (np.float32, ()))}

    def describe(self) -> dict[str, Any]:
        name = self.xp.cuda.runtime.getDeviceProperties(self.device)["name"]
        return {"backend": self.name, "product": self.product,
                "device": name.decode() if isinstance(name, bytes) else str(name)}

    def _dtype(self, bits: int, held: bool) -> Any:
        """float8 (stored as its bytes) for B held whole, where products run in float8."""
        if held and self._float8 is not None and bits <= 2048:
            return self.xp.uint8
        return super()._dtype(bits, held)

    def _bits(self, words: Any, dtype: Any) -> Any:
        if dtype != self.xp.uint8:
            return super()._bits(words, dtype)
        raw = self.xp.ascontiguousarray(words).view(self.xp.uint8).reshape(-1)
        return self.xp.unpackbits(raw).reshape(words.shape[0], -1) * np.uint8(_FLOAT8_ONE)

    def _product(self, a_bits: Any, b_bits: Any) -> Any:
        if self._float8 is not None and a_bits.dtype == self.xp.uint8:
            return self._float8(a_bits, b_bits)
        return super()._product(a_bits, b_bits)

    def _picker(self, prepared: _Device, tile: _TileRows, capacity: int) -> _KernelPicker:
        return _KernelPicker(self.xp, self._kernels, prepared, tile, capacity)

    def _fits(self, nbytes: int) -> bool:
        free, _ = self.xp.cuda.runtime.memGetInfo()
        return super()._fits(nbytes) and nbytes <= free // 4

    def _host(self, values: Any) -> np.ndarray:
        return np.asarray(self.xp.asnumpy(values), dtype=np.int64)

    def close(self) -> None:
        self.xp.get_default_memory_pool().free_all_blocks()
