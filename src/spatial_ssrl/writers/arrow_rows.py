"""Rows (dicts of Python values) to an Arrow table, column by column, from raw buffers.

``pa.Table.from_pylist`` gives the same table, but its first call in a process imports
pandas (pyarrow asks whether each input is a pandas object): 0.4-0.6 s and about 35 MB in
the process that writes the shards, paid in the middle of a run while the workers wait
for it to read their results. Here every column is built with ``pa.Array.from_buffers``
from NumPy offsets and joined bytes, which never asks. The types our writers use are
covered (strings, binary, int64, lists and structs of them, nulls anywhere); any other
type, or a value that does not fit its type, goes through ``pa.array``, so the table, or
the error, is the one ``from_pylist`` would give.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

_INT32_MAX = 2**31 - 1


class _Fallback(Exception):
    """This column is left to ``pa.array``."""


def rows_to_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    """The table ``pa.Table.from_pylist(rows, schema=schema)`` builds (a key missing from a
    row is a null)."""
    arrays = []
    for field in schema:
        values = [row.get(field.name) for row in rows]
        arrays.append(column(values, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def column(values: list, typ: pa.DataType) -> pa.Array:
    """``values`` as an array of ``typ``, equal to ``pa.array(values, type=typ)``."""
    try:
        return _build(values, typ)
    except _Fallback:
        return pa.array(values, type=typ)


def _validity(values: list) -> tuple[pa.Buffer | None, int]:
    """The validity bitmap of ``values`` (None: no nulls) and the null count."""
    valid = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
    nulls = len(values) - int(valid.sum())
    if nulls == 0:
        return None, 0
    return pa.py_buffer(np.packbits(valid, bitorder="little")), nulls


def _offsets(lengths: list[int]) -> pa.Buffer:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] > _INT32_MAX:
        raise _Fallback  # too big for 32-bit offsets: let Arrow say so
    return pa.py_buffer(offsets.astype(np.int32))


def _build(values: list, typ: pa.DataType) -> pa.Array:
    n = len(values)
    validity, nulls = _validity(values)
    if pa.types.is_string(typ) or pa.types.is_binary(typ):
        text = pa.types.is_string(typ)
        parts: list[Any] = []
        lengths = []
        for v in values:
            if v is None:
                lengths.append(0)
                continue
            if text:
                if type(v) is not str:
                    raise _Fallback
                try:
                    v = v.encode("utf-8")
                except UnicodeEncodeError:  # a lone surrogate: Arrow's own error, please
                    raise _Fallback from None
            elif not isinstance(v, (bytes, bytearray, memoryview)):
                raise _Fallback
            parts.append(v)
            lengths.append(len(v))
        return pa.Array.from_buffers(typ, n, [validity, _offsets(lengths), pa.py_buffer(b"".join(parts))],
                                     null_count=nulls)
    if pa.types.is_int64(typ):
        if any(v is not None and type(v) is not int for v in values):
            raise _Fallback
        try:
            data = np.fromiter((0 if v is None else v for v in values), dtype=np.int64, count=n)
        except OverflowError:
            raise _Fallback from None
        return pa.Array.from_buffers(typ, n, [validity, pa.py_buffer(data)], null_count=nulls)
    if pa.types.is_list(typ):
        flat: list = []
        lengths = []
        for v in values:
            if v is None:
                lengths.append(0)
                continue
            if not isinstance(v, (list, tuple)):
                raise _Fallback
            flat.extend(v)
            lengths.append(len(v))
        child = _build(flat, typ.value_type)
        return pa.Array.from_buffers(typ, n, [validity, _offsets(lengths)], null_count=nulls, children=[child])
    if pa.types.is_struct(typ):
        if any(v is not None and not isinstance(v, dict) for v in values):
            raise _Fallback
        children = []
        for i in range(typ.num_fields):
            name = typ.field(i).name
            children.append(_build([None if v is None else v.get(name) for v in values], typ.field(i).type))
        return pa.Array.from_buffers(typ, n, [validity], null_count=nulls, children=children)
    raise _Fallback
