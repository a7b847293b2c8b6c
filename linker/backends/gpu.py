"""The GPU backend: AND counts of CLK pairs as matrix products of their 0/1 bit matrices.

For 0/1 matrices, ``A @ B.T`` counts the bits each pair shares, exactly: every product is 0
or 1 and the sums (at most l) are integers that float32 accumulation holds exactly; float16
inputs (tensor cores, accumulated in float32 as CuPy does by default) hold 0 and 1 exactly
and their results up to 2048, so CLKs of up to 2048 bits use them, longer ones float32.
The threshold is applied on the device (count >= needed[a + b], the base's exact table,
within each row's popcount window) and only the passing pairs are copied back. B is held
on the device packed (l/8 bytes a row) when it fits in a quarter of the free memory, else
copied block by block; bits are unpacked on the device ``block_rows`` B rows at a time, so
a tile's memory is bounded whatever the sizes.

Written against CuPy's NumPy-compatible API only, so the same code runs on NumPy
(``MatrixBackend(numpy)``): the tests check it against the CPU backend there, and on a GPU
where one is available. Not yet run on GPU hardware at the time of writing (no device was
available): measure before relying on its speed.
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from .base import Backend
from .registry import BackendUnavailableError
from .types import PairArrays, Plan

__all__ = ["GpuBackend", "MatrixBackend"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Device:
    """A plan's arrays on the device: B packed (or None: copied per block), popcounts, the
    table of least counts."""

    b_words: Any
    b_pops: Any
    a_pops: Any
    needed: Any


class MatrixBackend(Backend):
    """Tiles of A against blocks of B as bit-matrix products, on the array module ``xp``
    (CuPy on a GPU; NumPy to check the code where there is none).

    Args:
        xp: the array module.
        tile_rows: A rows per product.
        block_rows: B rows per product (with ``tile_rows``, the memory of one product:
            tile_rows x block_rows counts).
        half: float16 inputs where exact (CLKs of up to 2048 bits), else float32.
    """

    name = "matrix"

    def __init__(self, xp: ModuleType, tile_rows: int = 4096, block_rows: int = 1 << 15,
                 half: bool = False) -> None:
        super().__init__(tile_rows)
        self.xp = xp
        self.block_rows = block_rows
        self.half = half

    def _fits(self, nbytes: int) -> bool:
        """Whether B may stay on the device whole."""
        return True

    def _prepare(self, plan: Plan) -> _Device:
        xp = self.xp
        b_words = xp.asarray(plan.b_words) if self._fits(plan.b_words.nbytes) else None
        return _Device(b_words, xp.asarray(plan.b_pops, dtype=xp.int32),
                       xp.asarray(plan.a_pops, dtype=xp.int32),
                       xp.asarray(plan.needed, dtype=xp.int32))

    def _bits(self, words: Any, dtype: Any) -> Any:
        """Packed rows (n, w) uint64 as 0/1 (n, 64w) in ``dtype`` (bit order is the same for
        both sides, which is all a count needs)."""
        xp = self.xp
        rows = words.shape[0]
        raw = xp.ascontiguousarray(words).view(xp.uint8).reshape(-1)
        return xp.unpackbits(raw).reshape(rows, -1).astype(dtype)

    def _tile(self, prepared: _Device, plan: Plan, first: int, last: int,
              capacity: int) -> PairArrays | None:
        """Every window pair of the tile is counted (the matrix product cannot stop
        halfway), so visited = completed = the pairs in the windows. The output is sized
        here, so ``capacity`` is not needed."""
        xp = self.xp
        starts, stops = plan.starts[first:last], plan.stops[first:last]
        lo, hi = int(starts.min()), int(stops.max())
        window = int((stops - starts).sum())
        if hi <= lo:
            return PairArrays.empty()
        dtype = xp.float16 if self.half and plan.a_words.shape[1] <= 32 else xp.float32
        a_bits = self._bits(xp.asarray(plan.a_words[first:last]), dtype)
        a_pops = prepared.a_pops[first:last][:, None]
        row_start = xp.asarray(starts)[:, None]
        row_stop = xp.asarray(stops)[:, None]
        lefts, rights, counts = [], [], []
        for block in range(lo, hi, self.block_rows):
            end = min(block + self.block_rows, hi)
            b_words = (prepared.b_words[block:end] if prepared.b_words is not None
                       else xp.asarray(plan.b_words[block:end]))
            shared = a_bits @ self._bits(b_words, dtype).T
            column = xp.arange(block, end, dtype=xp.int64)[None, :]
            keep = self._keep(shared, a_pops, prepared.b_pops[block:end][None, :], row_start,
                              row_stop, column, prepared.needed)
            rows, cols = xp.nonzero(keep)
            lefts.append(rows)
            rights.append(cols + block)
            counts.append(shared[rows, cols])
        left, right, count = (self._host(xp.concatenate(x)) for x in (lefts, rights, counts))
        return PairArrays(plan.a_index[first + left], plan.b_index[right],
                          count.astype(np.int64), window, window)

    def _keep(self, shared: Any, a_pops: Any, b_pops: Any, row_start: Any, row_stop: Any,
              column: Any, needed: Any) -> Any:
        """Pairs (tile row, block column) in their row's window whose count passes."""
        passing = shared.astype(self.xp.int32) >= needed[a_pops + b_pops]
        return passing & (column >= row_start) & (column < row_stop)

    def _host(self, values: Any) -> np.ndarray:
        return np.asarray(values, dtype=np.int64)


class GpuBackend(MatrixBackend):
    """``MatrixBackend`` on a CUDA GPU with CuPy, float16 products on tensor cores.

    Args:
        device: the CUDA device number.
        tile_rows: A rows per product.
        block_rows: B rows per product.

    Raises:
        BackendUnavailableError: CuPy finds no CUDA device.
    """

    name = "gpu"

    def __init__(self, device: int = 0, tile_rows: int = 8192, block_rows: int = 1 << 16
                 ) -> None:
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
        # float16 products are exact only when CuPy accumulates them in float32, its
        # default; CUPY_TF16=1 asks for float16 accumulation.
        super().__init__(cupy, tile_rows, block_rows,
                         half=os.environ.get("CUPY_TF16", "0") != "1")
        self.device = device
        self._keep_kernel = cupy.ElementwiseKernel(
            "T shared, int32 a_pop, int32 b_pop, int64 start, int64 stop, int64 column, "
            "raw int32 needed", "bool keep",
            "keep = column >= start && column < stop "
            "&& (int)(float)shared >= needed[a_pop + b_pop]", "pprl_dice_keep")

    def describe(self) -> dict[str, Any]:
        name = self.xp.cuda.runtime.getDeviceProperties(self.device)["name"]
        return {"backend": self.name, "device": name.decode() if isinstance(name, bytes)
                else str(name)}

    def _keep(self, shared: Any, a_pops: Any, b_pops: Any, row_start: Any, row_stop: Any,
              column: Any, needed: Any) -> Any:
        """One fused pass over the counts instead of five."""
        return self._keep_kernel(shared, a_pops, b_pops, row_start, row_stop, column, needed)

    def _fits(self, nbytes: int) -> bool:
        free, _ = self.xp.cuda.runtime.memGetInfo()
        return bool(nbytes <= free // 4)

    def _host(self, values: Any) -> np.ndarray:
        return np.asarray(self.xp.asnumpy(values), dtype=np.int64)

    def close(self) -> None:
        self.xp.get_default_memory_pool().free_all_blocks()
