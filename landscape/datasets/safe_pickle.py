"""A reader of the few pickle opcodes the CIFAR-10 batch files use, without :mod:`pickle`.

It never imports a module or calls a function named in the file (the project reads no
pickle with :mod:`pickle`); see :class:`PickleReader`.
"""

from __future__ import annotations

import math
import re
import struct

import numpy as np

from landscape.errors import UnsafeFileError

class _Stub:
    """A NumPy dtype or array announced by REDUCE and filled in by BUILD (``value``)."""

    def __init__(self, kind: str, arg=None):
        self.kind, self.arg, self.value = kind, arg, None


def _resolve(x):
    if isinstance(x, _Stub):
        if x.value is None:
            raise ValueError(f"numpy {x.kind} was never given its state")
        return x.value
    if isinstance(x, dict):
        return {_resolve(k): _resolve(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_resolve(v) for v in x)
    return x


_ALLOWED_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}
_DTYPE = re.compile(r"[biuf][1248]")


class PickleReader:
    """Decode the pickle subset of the CIFAR batch files without :mod:`pickle`.

    The official batches are Python 2 ``cPickle`` protocol-2 streams of a dict whose values are
    byte strings, lists of ints and bytes, and one NumPy array (``numpy.core.multiarray._reconstruct``
    then ``BUILD`` with (version, shape, dtype, fortran, raw bytes)). Python 3 writes the same
    structure with ``_codecs.encode`` for bytes and, at protocol 4, frames and ``STACK_GLOBAL``.
    This reader runs those opcodes on a stack. A global is accepted only if it is one of
    :data:`_ALLOWED_GLOBALS`, and it is never imported or called: array and dtype are rebuilt with
    ``np.frombuffer`` from a plain numeric dtype code. Any other opcode or global raises.
    Strings of the Python 2 dialect stay ``bytes`` (like ``pickle.load(f, encoding="bytes")``).
    """

    def __init__(self, raw: bytes):
        self.raw, self.pos = memoryview(raw), 0
        self.stack: list = []
        self.marks: list[int] = []
        self.memo: dict[int, object] = {}

    def load(self):
        while True:
            op = self._take(1)
            if op == b".":
                return _resolve(self.stack.pop())
            handler = self._OPS.get(op)
            if handler is None:
                raise ValueError(f"unsupported pickle opcode {op!r} at byte {self.pos - 1}")
            handler(self)

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.raw):
            raise ValueError("truncated pickle stream")
        self.pos += n
        return self.raw[self.pos - n:self.pos].tobytes()

    def _line(self) -> str:
        end = bytes(self.raw[self.pos:self.pos + 256]).find(b"\n")
        if end < 0:
            raise ValueError("unterminated GLOBAL")
        return self._take(end + 1)[:-1].decode("ascii")

    def _pop_mark(self) -> list:
        start = self.marks.pop()
        items, self.stack[start:] = self.stack[start:], []
        return items

    def _global(self, module: str, name: str) -> None:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise UnsafeFileError(f"pickle refers to {module}.{name}; a CIFAR batch may only rebuild NumPy "
                                  "arrays, so this file is not read (it is not an official batch)")
        self.stack.append(("global", module, name))

    def _reduce(self) -> None:
        args, fn = self.stack.pop(), self.stack.pop()
        if not (isinstance(fn, tuple) and fn[:1] == ("global",)):
            raise ValueError("REDUCE on something that is not an allowed global")
        name = fn[2]
        if name == "encode":  # Python 3 writes bytes b as _codecs.encode(str, "latin1")
            text, encoding = args
            if encoding not in ("latin1", "latin-1"):
                raise ValueError(f"_codecs.encode with encoding {encoding!r}")
            self.stack.append(text.encode("latin1"))
        elif name == "dtype":
            self.stack.append(_Stub("dtype", _text(args[0])))
        elif name == "_reconstruct":
            self.stack.append(_Stub("array"))
        else:
            raise ValueError(f"REDUCE of {name} is not supported")

    def _build(self) -> None:
        state, obj = self.stack.pop(), self.stack[-1]
        if not isinstance(obj, _Stub) or obj.value is not None:
            raise ValueError("BUILD on something that is not a NumPy dtype or array")
        obj.value = _make_dtype(obj.arg, state) if obj.kind == "dtype" else _make_array(state)

    def _push(self, item) -> None:
        self.stack.append(item)

    def _pop(self, n: int) -> list:
        if len(self.stack) < n:
            raise ValueError("pickle stack underflow")
        items, self.stack[len(self.stack) - n:] = self.stack[len(self.stack) - n:], []
        return items

    def _extend(self, items: list) -> None:
        self.stack[-1].extend(items)

    def _setitems(self, items: list) -> None:
        self.stack[-1].update(zip(items[::2], items[1::2]))

    def _stack_global(self) -> None:
        name, module = self.stack.pop(), self.stack.pop()
        self._global(module, name)

    def _int(self, n: int, signed: bool = False) -> int:
        return int.from_bytes(self._take(n), "little", signed=signed)

    # opcode → action; names as in the standard library's pickletools.
    _OPS = {
        b"\x80": lambda r: r._take(1),  # PROTO
        b"\x95": lambda r: r._take(8),  # FRAME
        b"(": lambda r: r.marks.append(len(r.stack)),  # MARK
        b"}": lambda r: r._push({}),  # EMPTY_DICT
        b"]": lambda r: r._push([]),  # EMPTY_LIST
        b")": lambda r: r._push(()),  # EMPTY_TUPLE
        b"N": lambda r: r._push(None),  # NONE
        b"\x88": lambda r: r._push(True),  # NEWTRUE
        b"\x89": lambda r: r._push(False),  # NEWFALSE
        b"K": lambda r: r._push(r._int(1)),  # BININT1
        b"M": lambda r: r._push(r._int(2)),  # BININT2
        b"J": lambda r: r._push(r._int(4, signed=True)),  # BININT
        b"\x8a": lambda r: r._push(r._int(r._int(1), signed=True)),  # LONG1
        b"G": lambda r: r._push(struct.unpack(">d", r._take(8))[0]),  # BINFLOAT
        b"U": lambda r: r._push(r._take(r._int(1))),  # SHORT_BINSTRING (Python 2 str)
        b"T": lambda r: r._push(r._take(r._int(4))),  # BINSTRING (Python 2 str)
        b"C": lambda r: r._push(r._take(r._int(1))),  # SHORT_BINBYTES
        b"B": lambda r: r._push(r._take(r._int(4))),  # BINBYTES
        b"\x8e": lambda r: r._push(r._take(r._int(8))),  # BINBYTES8
        b"\x8c": lambda r: r._push(r._take(r._int(1)).decode()),  # SHORT_BINUNICODE
        b"X": lambda r: r._push(r._take(r._int(4)).decode()),  # BINUNICODE
        b"\x8d": lambda r: r._push(r._take(r._int(8)).decode()),  # BINUNICODE8
        b"t": lambda r: r._push(tuple(r._pop_mark())),  # TUPLE
        b"\x85": lambda r: r._push(tuple(r._pop(1))),  # TUPLE1
        b"\x86": lambda r: r._push(tuple(r._pop(2))),  # TUPLE2
        b"\x87": lambda r: r._push(tuple(r._pop(3))),  # TUPLE3
        b"a": lambda r: r._extend(r._pop(1)),  # APPEND
        b"e": lambda r: r._extend(r._pop_mark()),  # APPENDS
        b"s": lambda r: r._setitems(r._pop(2)),  # SETITEM
        b"u": lambda r: r._setitems(r._pop_mark()),  # SETITEMS
        b"q": lambda r: r.memo.__setitem__(r._int(1), r.stack[-1]),  # BINPUT
        b"r": lambda r: r.memo.__setitem__(r._int(4), r.stack[-1]),  # LONG_BINPUT
        b"\x94": lambda r: r.memo.__setitem__(len(r.memo), r.stack[-1]),  # MEMOIZE
        b"h": lambda r: r._push(r.memo[r._int(1)]),  # BINGET
        b"j": lambda r: r._push(r.memo[r._int(4)]),  # LONG_BINGET
        b"c": lambda r: r._global(r._line(), r._line()),  # GLOBAL
        b"\x93": _stack_global,  # STACK_GLOBAL
        b"R": _reduce,  # REDUCE
        b"b": _build,  # BUILD
    }


def _text(s) -> str:
    return s.decode("latin1") if isinstance(s, bytes) else str(s)


def _make_dtype(code: str, state) -> np.dtype:
    order = _text(state[1]) if isinstance(state, tuple) and len(state) > 1 else "|"
    if not _DTYPE.fullmatch(code) or order not in ("|", "<", ">", "="):
        raise ValueError(f"only plain numeric dtypes are read, got {code!r} (byte order {order!r})")
    return np.dtype(code).newbyteorder(order) if order in "<>" else np.dtype(code)


def _make_array(state) -> np.ndarray:
    _, shape, dtype, fortran, raw = state
    dtype = _resolve(dtype)
    if not isinstance(dtype, np.dtype) or not isinstance(raw, bytes):
        raise ValueError("array state must hold a dtype and raw bytes")
    shape = tuple(int(s) for s in shape)
    if math.prod(shape) * dtype.itemsize != len(raw):
        raise ValueError(f"array of shape {shape} and dtype {dtype} needs {math.prod(shape) * dtype.itemsize} "
                         f"bytes, the file holds {len(raw)}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order="F" if fortran else "C")

