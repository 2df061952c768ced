"""Checkpoints: mt.save / mt.load of nested containers of arrays in NumPy's .npz format.

Arrays become .npz entries named by their path in the structure ('model/encoder.weight');
a JSON manifest entry records the structure and every scalar (ints of any size, floats,
strings, bools, None). Loading never unpickles, so opening a checkpoint cannot run code, and
it checks every size a file declares before allocating, so a crafted file cannot exhaust
memory: whatever is wrong with a file, load raises one CheckpointError naming it.
"""
from __future__ import annotations

import ast
import json
import math
import os
import re
import stat
import struct
import zipfile
import zlib
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import CheckpointError, MicrotensorError
from .files import NotARegularFile, atomic_write
from .tensor import Tensor

if TYPE_CHECKING:
    from ._types import StrPath

MANIFEST = "__microtensor_manifest__"
FORMAT = "microtensor-checkpoint"
VERSION = 1
MAX_DEPTH = 100             # containers nested deeper are refused, on save and on load
MIN_CEILING = 64 * 2 ** 20  # load's default max_bytes: this, or 32× the file's size if more
JSON_COST = 32              # a byte of JSON becomes at most ~24 bytes of Python objects


# ---- save -------------------------------------------------------------------------------
def save(obj: Any, path: StrPath) -> None:
    """Write obj to path atomically: a temporary file beside it, fsync'd, then renamed.

    obj: dicts (str or int keys), lists and tuples nesting ndarrays, Tensors (saved as their
    data), numbers, strings, bools and None, at most MAX_DEPTH containers deep and without
    cycles. A symlink is followed (its target is replaced, atomically); a path that is a
    directory, a FIFO or a device is refused. If anything fails, the temporary file is
    removed and any previous checkpoint at path is left as it was.
    """
    path = os.fspath(path)
    arrays: dict[str, np.ndarray] = {}
    tree = _encode(obj, (), arrays, {})
    try:
        manifest = json.dumps({"format": FORMAT, "version": VERSION, "tree": tree})
    except ValueError as e:             # an int too long for JSON's conversion limit
        raise CheckpointError(f"save: cannot write '{path}': {e}") from None
    arrays[MANIFEST] = np.frombuffer(manifest.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    try:
        with atomic_write(path) as f:
            with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED,
                                 allowZip64=True) as zf:
                for name, arr in arrays.items():
                    with zf.open(name + ".npy", mode="w", force_zip64=True) as out:
                        np.lib.format.write_array(out, arr, allow_pickle=False)
    except NotARegularFile as e:
        raise CheckpointError(f"save: {e}") from None


def _where(keys):
    """A path in the structure for messages: 'model/fc.weight', shortened when deep."""
    if len(keys) > 8:
        keys = [*keys[:3], f"… ({len(keys) - 6} more) …", *keys[-3:]]
    return "/".join(str(k) for k in keys) or "<root>"


def _encode(obj, keys, arrays, open_containers):
    """The manifest node for obj; arrays found on the way are added to `arrays`.

    open_containers maps id() of each dict, list and tuple on the way down to its keys, so a
    structure that contains itself is found (not recursed into until RecursionError).
    """
    if obj is None or isinstance(obj, (bool, str)):
        return {"t": "scalar", "v": obj}
    if isinstance(obj, int) and not isinstance(obj, np.integer):
        return {"t": "scalar", "v": int(obj)}
    if isinstance(obj, float) and not isinstance(obj, np.floating):
        return {"t": "scalar", "v": float(obj)}
    if isinstance(obj, (np.ndarray, np.generic, Tensor)):
        kind = "tensor" if isinstance(obj, Tensor) else \
            "array" if isinstance(obj, np.ndarray) else "npscalar"
        arr = np.asarray(obj._data if isinstance(obj, Tensor) else obj)
        if arr.dtype.hasobject:
            raise CheckpointError(f"save: the array at '{_where(keys)}' has dtype object, which "
                                  f"a checkpoint cannot hold without pickle")
        entry = base = "/".join(str(k) for k in keys) or "<root>"
        while entry in arrays or entry == MANIFEST:     # 'a/b' as a key and as a path
            entry = f"{base}#{len(arrays)}"
            base = entry
        arrays[entry] = arr
        return {"t": kind, "entry": entry}
    if not isinstance(obj, (dict, list, tuple)):
        raise CheckpointError(f"save: cannot store a {type(obj).__name__} at '{_where(keys)}'; "
                              f"checkpoints hold dicts, lists, tuples, arrays, numbers, "
                              f"strings, bools and None")
    if id(obj) in open_containers:
        raise CheckpointError(f"save: the {type(obj).__name__} at '{_where(keys)}' is the one "
                              f"at '{_where(open_containers[id(obj)])}', which contains it: "
                              f"a checkpoint holds a tree, not a structure that contains "
                              f"itself")
    if len(keys) >= MAX_DEPTH:
        raise CheckpointError(f"save: containers nested more than {MAX_DEPTH} deep, at "
                              f"'{_where(keys)}'; a checkpoint holds at most {MAX_DEPTH} "
                              f"levels")
    open_containers[id(obj)] = keys
    try:
        if isinstance(obj, dict):
            items = []
            for k, v in obj.items():
                if isinstance(k, bool) or not isinstance(k, (str, int)):
                    raise CheckpointError(f"save: key {k!r} at '{_where(keys)}' is a "
                                          f"{type(k).__name__}; checkpoint keys must be str "
                                          f"or int")
                items.append([k, _encode(v, keys + (k,), arrays, open_containers)])
            return {"t": "odict" if isinstance(obj, OrderedDict) else "dict", "items": items}
        return {"t": type(obj).__name__ if type(obj) in (list, tuple) else "list",
                "items": [_encode(v, keys + (i,), arrays, open_containers)
                          for i, v in enumerate(obj)]}
    finally:
        del open_containers[id(obj)]


# ---- load -------------------------------------------------------------------------------
class _Corrupt(Exception):
    """What is wrong inside a file; load() turns it into a CheckpointError naming the file."""


def load(path: StrPath, max_bytes: int | None = None) -> Any:
    """Read a checkpoint written by save(). Never runs code from the file (nothing is
    unpickled) and allocates at most about max_bytes for it.

    max_bytes bounds what the file may make load allocate: the sizes its arrays declare
    plus 32× the size of its manifest (JSON becomes Python objects). Every size is checked
    before anything is allocated. The default is 32× the file's size or 64 MiB, whichever
    is larger, so every file save() writes loads; pass a larger max_bytes to open a
    compressed file that expands further. A missing, empty, truncated, corrupt, crafted or
    foreign file, or one over the limit, raises CheckpointError naming the file and what
    is wrong with it.
    """
    path = os.fspath(path)
    f, size = _open_regular(path)
    with f:
        ceiling = max(MIN_CEILING, JSON_COST * size) if max_bytes is None else max_bytes
        try:
            if size == 0:
                raise CheckpointError(f"load: '{path}' is empty, not a checkpoint")
            if f.read(4) != b"PK\x03\x04":
                raise CheckpointError(f"load: '{path}' is not a checkpoint (not an .npz file)")
            f.seek(0)
            with zipfile.ZipFile(f) as zf:
                if MANIFEST + ".npy" not in zf.NameToInfo:
                    raise CheckpointError(f"load: '{path}' is a zip/.npz file but not a "
                                          f"microtensor checkpoint (it has no manifest); read "
                                          f"it with numpy.load")
                return _Reader(zf, path, size, ceiling).read()
        except CheckpointError:
            raise
        except _Corrupt as e:
            raise CheckpointError(f"load: '{path}' is a corrupt checkpoint: {e}") from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError,
                OSError, ValueError, EOFError, KeyError, IndexError, TypeError,
                AttributeError, OverflowError, struct.error, zlib.error, MemoryError,
                MicrotensorError) as e:     # RecursionError is a RuntimeError
            detail = e if isinstance(e, zipfile.BadZipFile) else f"{type(e).__name__}: {e}"
            raise CheckpointError(f"load: '{path}' is a truncated or corrupt checkpoint "
                                  f"({detail})") from None


def _open_regular(path):
    """(binary file, size) of the regular file at path, else CheckpointError; a FIFO is
    opened without blocking and refused."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise CheckpointError(f"load: no checkpoint at '{path}' (file not found)") from None
    except IsADirectoryError:
        raise CheckpointError(f"load: '{path}' is a directory, not a checkpoint file") from None
    except OSError as e:
        raise CheckpointError(f"load: cannot open '{path}': {e.strerror or e}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else \
            "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else \
            "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else \
            "not a regular file"
        raise CheckpointError(f"load: '{path}' is {kind}, not a checkpoint file")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb"), st.st_size


_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"')
_BRACKETS = np.zeros(256, dtype=np.int64)
_BRACKETS[[ord("["), ord("{")]], _BRACKETS[[ord("]"), ord("}")]] = 1, -1


def _json_depth(raw):
    """How deeply the brackets of JSON text nest (strings skipped), without parsing it."""
    b = np.frombuffer(_JSON_STRING.sub(b'""', raw), dtype=np.uint8)
    return int(np.cumsum(_BRACKETS[b]).max(initial=0))


class _Reader:
    """One pass over a checkpoint: the manifest, then the structure it describes (checked
    whole and sized before any array is read), then the arrays."""

    def __init__(self, zf, path, size, ceiling):
        self.zf, self.path, self.size, self.ceiling = zf, path, size, ceiling

    def read(self):
        info = self._member(MANIFEST)
        self._fits(JSON_COST * info.file_size, "its manifest")
        raw = self._array(info)
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise _Corrupt(f"the manifest is an array of {raw.dtype} and shape {raw.shape}, "
                           f"not UTF-8 bytes")
        raw = raw.tobytes()
        if _json_depth(raw) > 3 * MAX_DEPTH + 4:      # a dict level is 3 JSON levels
            raise CheckpointError(f"load: '{self.path}' nests containers more than "
                                  f"{MAX_DEPTH} deep, which no checkpoint does")
        manifest = json.loads(raw.decode("utf-8", "surrogatepass"))
        if not isinstance(manifest, dict) or "tree" not in manifest:
            raise _Corrupt("the manifest is not an object with a 'tree'")
        if manifest.get("format") != FORMAT:
            raise CheckpointError(f"load: '{self.path}' has a manifest of unknown format "
                                  f"{manifest.get('format')!r}")
        version = manifest.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise _Corrupt(f"the manifest's version is {version!r}, not a positive integer")
        if version > VERSION:
            raise CheckpointError(f"load: '{self.path}' is checkpoint version {version}; "
                                  f"this microtensor reads up to version {VERSION}")
        entries = {}
        self._check(manifest["tree"], (), entries)
        total = JSON_COST * info.file_size + sum(i.file_size for i in entries.values())
        self._fits(total, f"its {len(entries)} arrays and manifest")
        return self._decode(manifest["tree"], entries)

    def _fits(self, nbytes, what):
        if nbytes > self.ceiling:
            raise CheckpointError(
                f"load: '{self.path}' would need {nbytes:,} bytes for {what}, more than "
                f"the limit of {self.ceiling:,} (max_bytes); if you trust this file, load it "
                f"with mt.load(path, max_bytes=...) set higher")

    def _member(self, entry):
        """The ZipInfo of entry's .npy member, its declared sizes checked against the file."""
        info = self.zf.NameToInfo.get(entry + ".npy")
        if info is None:
            raise _Corrupt(f"array entry {entry!r} named by the manifest is missing")
        name = info.filename
        if info.flag_bits & 0x61:
            raise _Corrupt(f"member '{name}' is encrypted or patched (zip flags "
                           f"0x{info.flag_bits:04x}), which a checkpoint never is")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _Corrupt(f"member '{name}' uses zip compression method "
                           f"{info.compress_type}; checkpoints are stored or deflated")
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise _Corrupt(f"member '{name}' is stored uncompressed but declares "
                           f"{info.file_size:,} bytes and {info.compress_size:,} stored")
        if info.header_offset < 0 or info.header_offset + info.compress_size > self.size:
            raise _Corrupt(f"member '{name}' declares {info.compress_size:,} bytes at offset "
                           f"{info.header_offset:,}, outside the {self.size:,}-byte file")
        return info

    def _check(self, node, keys, entries, depth=0):
        """Check the structure below node and collect the members it names, reading none."""
        if not isinstance(node, dict) or not isinstance(node.get("t"), str):
            raise _Corrupt(f"the manifest node at '{_where(keys)}' is not a typed node")
        t = node["t"]
        if t == "scalar":
            v = node.get("v", ())
            if not (v is None or isinstance(v, (bool, int, float, str))):
                raise _Corrupt(f"the scalar at '{_where(keys)}' is a {type(v).__name__}")
        elif t in ("array", "npscalar", "tensor"):
            entry = node.get("entry")
            if not isinstance(entry, str):
                raise _Corrupt(f"the array node at '{_where(keys)}' names no entry")
            if entry in entries:
                raise _Corrupt(f"array entry {entry!r} is named twice by the manifest")
            entries[entry] = self._member(entry)
        elif t in ("dict", "odict", "list", "tuple"):
            if depth >= MAX_DEPTH:
                raise CheckpointError(f"load: '{self.path}' nests containers more than "
                                      f"{MAX_DEPTH} deep, which no checkpoint does")
            items = node.get("items")
            if not isinstance(items, list):
                raise _Corrupt(f"the {t} at '{_where(keys)}' has no list of items")
            if t in ("dict", "odict"):
                seen = set()
                for pair in items:
                    if not (isinstance(pair, list) and len(pair) == 2):
                        raise _Corrupt(f"an item of the {t} at '{_where(keys)}' is not a "
                                       f"[key, value] pair")
                    k = pair[0]
                    if isinstance(k, bool) or not isinstance(k, (str, int)) or k in seen:
                        raise _Corrupt(f"the {t} at '{_where(keys)}' has a bad or repeated "
                                       f"key {k!r}")
                    seen.add(k)
                    self._check(pair[1], keys + (k,), entries, depth + 1)
            else:
                for i, v in enumerate(items):
                    self._check(v, keys + (i,), entries, depth + 1)
        else:
            raise _Corrupt(f"unknown manifest node type {t!r} at '{_where(keys)}'")

    def _decode(self, node, entries):
        t = node["t"]
        if t == "scalar":
            return node["v"]
        if t in ("array", "npscalar", "tensor"):
            arr = self._array(entries[node["entry"]])
            if t == "npscalar":
                if arr.shape != ():
                    raise _Corrupt(f"entry {node['entry']!r} is a NumPy scalar in the "
                                   f"manifest but has shape {arr.shape}")
                return arr[()]
            return _as_tensor(arr) if t == "tensor" else arr
        if t in ("dict", "odict"):
            pairs = [(k, self._decode(v, entries)) for k, v in node["items"]]
            return OrderedDict(pairs) if t == "odict" else dict(pairs)
        items = [self._decode(v, entries) for v in node["items"]]
        return tuple(items) if t == "tuple" else items

    def _array(self, info):
        """The array in a member whose sizes _member checked: its .npy header is parsed and
        its shape × itemsize must equal the member's size exactly before anything is
        allocated; the data is read in chunks (the zip CRC is verified at the end)."""
        name = info.filename
        with self.zf.open(info) as f:
            dtype, shape, fortran, header = _npy_header(f, name)
            count = math.prod(shape)
            nbytes = count * dtype.itemsize
            if header + nbytes != info.file_size:
                raise _Corrupt(f"member '{name}' declares an array of {nbytes:,} bytes "
                               f"({dtype}, shape {shape}) but holds {info.file_size - header:,}")
            arr = np.ndarray(count, dtype=dtype)
            if nbytes:
                buf, pos = memoryview(arr.view(np.uint8)), 0
                while pos < nbytes:
                    n = f.readinto(buf[pos:pos + (1 << 20)])
                    if not n:
                        raise _Corrupt(f"member '{name}' ends after {pos:,} of its "
                                       f"{nbytes:,} bytes of data")
                    pos += n
            if f.read(1):
                raise _Corrupt(f"member '{name}' holds more than its array")
        if fortran:
            return arr.reshape(shape[::-1]).transpose()
        return arr.reshape(shape)


def _as_tensor(arr):
    if arr.dtype.kind not in "biufc":
        raise _Corrupt(f"a tensor entry holds an array of dtype {arr.dtype}")
    t = Tensor.__new__(Tensor)
    Tensor.__init__(t, np.empty(0))
    t.data = arr                                  # the array read, not a second copy
    return t


def _npy_header(f, name):
    """(dtype, shape, fortran_order, header length) of the .npy data in f (NEP 1 format)."""
    magic = f.read(8)
    if len(magic) != 8 or magic[:6] != b"\x93NUMPY" or magic[6] not in (1, 2, 3) or magic[7]:
        raise _Corrupt(f"member '{name}' is not a .npy array")
    width = 2 if magic[6] == 1 else 4
    (length,) = struct.unpack("<H" if width == 2 else "<I", f.read(width))
    if length > 65536:
        raise _Corrupt(f"member '{name}' has a .npy header of {length:,} bytes")
    text = f.read(length)
    if len(text) != length:
        raise _Corrupt(f"member '{name}' ends inside its .npy header")
    try:
        d = ast.literal_eval(text.decode("utf-8" if magic[6] == 3 else "latin1"))
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        raise _Corrupt(f"member '{name}' has an unreadable .npy header") from None
    if not (isinstance(d, dict) and d.keys() == {"descr", "fortran_order", "shape"}
            and isinstance(d["fortran_order"], bool) and isinstance(d["shape"], tuple)
            and all(type(n) is int and n >= 0 for n in d["shape"])):
        raise _Corrupt(f"member '{name}' has a malformed .npy header {d!r:.200}")
    try:
        dtype = np.lib.format.descr_to_dtype(d["descr"])
    except (TypeError, ValueError, KeyError, IndexError) as e:
        raise _Corrupt(f"member '{name}' has an unknown dtype {d['descr']!r:.100} "
                       f"({e})") from None
    if dtype.hasobject:
        raise _Corrupt(f"member '{name}' holds Python objects (pickled data), which load "
                       f"never unpickles")
    return dtype, d["shape"], d["fortran_order"], 8 + width + length
