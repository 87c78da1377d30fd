"""A software prefetch for the compiled kernels: ``prefetch(row, j)`` (LLVM's ``llvm.prefetch``).

At catalog scale a kernel's reads miss the processor's caches; a load that misses
stalls the core once its reorder window fills, so a loop with much work per
iteration cannot overlap its misses by itself. A prefetch asks for a cache line
without waiting for it and never faults, so a kernel can ask for the next slot's
data while it works on this one.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_I32 = ir.IntType(32)
_BYTE_PTR = ir.IntType(8).as_pointer()


@intrinsic
def prefetch(typingctx, row, index):
    """Ask for the cache line of ``row[index]`` (``row``: a 1-D array) to be read, for reading.

    No bounds check is needed or made: a prefetch of any address is a no-op if invalid.
    """
    if not isinstance(row, types.Array) or row.ndim != 1 or not isinstance(index, types.Integer):
        return None
    sig = types.void(row, index)

    def codegen(context, builder, signature, args):
        arr = context.make_array(signature.args[0])(context, builder, args[0])
        idx = context.cast(builder, args[1], signature.args[1], types.intp)
        ptr = cgutils.get_item_pointer(
            context, builder, signature.args[0], arr, [idx], wraparound=False
        )
        byte_ptr = builder.bitcast(ptr, _BYTE_PTR)  # one declaration for every element type
        fnty = ir.FunctionType(ir.VoidType(), [_BYTE_PTR, _I32, _I32, _I32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [byte_ptr, _I32(0), _I32(3), _I32(1)])  # read, all cache levels, data
        return context.get_dummy_value()

    return sig, codegen
