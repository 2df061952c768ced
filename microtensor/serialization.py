"""Checkpoints: mt.save / mt.load of nested containers of arrays in NumPy's .npz format.

Arrays become .npz entries named by their path in the structure ('model/encoder.weight');
a JSON manifest entry records the structure and every scalar (ints of any size, floats,
strings, bools, None). Loading never unpickles, so opening a checkpoint cannot run code.
"""
import json
import os
import zipfile
from collections import OrderedDict

import numpy as np

from .errors import CheckpointError
from .files import atomic_write
from .tensor import Tensor

MANIFEST = "__microtensor_manifest__"
FORMAT = "microtensor-checkpoint"
VERSION = 1


# ---- save -------------------------------------------------------------------------------
def save(obj, path):
    """Write obj to path atomically: a temporary file beside it, fsync'd, then renamed.

    obj: dicts (str or int keys), lists and tuples nesting ndarrays, Tensors (saved as their
    data), numbers, strings, bools and None. If anything fails, the temporary file is removed
    and any previous checkpoint at path is left as it was.
    """
    path = os.fspath(path)
    arrays = {}
    tree = _encode(obj, (), arrays)
    manifest = json.dumps({"format": FORMAT, "version": VERSION, "tree": tree})
    arrays[MANIFEST] = np.frombuffer(manifest.encode("utf-8"), dtype=np.uint8)
    with atomic_write(path) as f:
        with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, arr in arrays.items():
                with zf.open(name + ".npy", mode="w", force_zip64=True) as out:
                    np.lib.format.write_array(out, arr, allow_pickle=False)


def _where(keys):
    return "/".join(str(k) for k in keys) or "<root>"


def _encode(obj, keys, arrays):
    """The manifest node for obj; arrays found on the way are added to `arrays`."""
    if obj is None or isinstance(obj, (bool, str)):
        return {"t": "scalar", "v": obj}
    if isinstance(obj, int) and not isinstance(obj, np.integer):
        return {"t": "scalar", "v": int(obj)}
    if isinstance(obj, float) and not isinstance(obj, np.floating):
        return {"t": "scalar", "v": float(obj)}
    if isinstance(obj, (np.ndarray, np.generic, Tensor)):
        kind = "tensor" if isinstance(obj, Tensor) else \
            "array" if isinstance(obj, np.ndarray) else "npscalar"
        arr = np.asarray(obj.data if isinstance(obj, Tensor) else obj)
        if arr.dtype.hasobject:
            raise CheckpointError(f"save: the array at '{_where(keys)}' has dtype object, which "
                                  f"a checkpoint cannot hold without pickle")
        entry = base = _where(keys)
        while entry in arrays or entry == MANIFEST:     # 'a/b' as a key and as a path
            entry = f"{base}#{len(arrays)}"
            base = entry
        arrays[entry] = arr
        return {"t": kind, "entry": entry}
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if isinstance(k, bool) or not isinstance(k, (str, int)):
                raise CheckpointError(f"save: key {k!r} at '{_where(keys)}' is a "
                                      f"{type(k).__name__}; checkpoint keys must be str or int")
            items.append([k, _encode(v, keys + (k,), arrays)])
        return {"t": "odict" if isinstance(obj, OrderedDict) else "dict", "items": items}
    if isinstance(obj, (list, tuple)):
        return {"t": type(obj).__name__ if type(obj) in (list, tuple) else "list",
                "items": [_encode(v, keys + (i,), arrays) for i, v in enumerate(obj)]}
    raise CheckpointError(f"save: cannot store a {type(obj).__name__} at '{_where(keys)}'; "
                          f"checkpoints hold dicts, lists, tuples, arrays, numbers, strings, "
                          f"bools and None")


# ---- load -------------------------------------------------------------------------------
def load(path):
    """Read a checkpoint written by save(); a missing, empty, truncated or foreign file raises
    CheckpointError naming it."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"load: no checkpoint at '{path}' (file not found)")
    if os.path.isdir(path):
        raise CheckpointError(f"load: '{path}' is a directory, not a checkpoint file")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"load: '{path}' is empty, not a checkpoint")
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":
                raise CheckpointError(f"load: '{path}' is not a checkpoint (not an .npz file)")
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if MANIFEST + ".npy" not in names:
                raise CheckpointError(f"load: '{path}' is a zip/.npz file but not a microtensor "
                                      f"checkpoint (it has no manifest); read it with numpy.load")
            manifest = json.loads(bytes(_read(zf, MANIFEST)).decode("utf-8"))
            if manifest.get("format") != FORMAT:
                raise CheckpointError(f"load: '{path}' has a manifest of unknown format "
                                      f"{manifest.get('format')!r}")
            if manifest.get("version", 0) > VERSION:
                raise CheckpointError(f"load: '{path}' is checkpoint version "
                                      f"{manifest['version']}; this microtensor reads up to "
                                      f"version {VERSION}")
            return _decode(manifest["tree"], zf, names)
    except CheckpointError:
        raise
    except zipfile.BadZipFile as e:
        raise CheckpointError(f"load: '{path}' is a truncated or corrupt checkpoint "
                              f"({e})") from e
    except (OSError, ValueError, EOFError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"load: '{path}' is a corrupt checkpoint ({type(e).__name__}: "
                              f"{e})") from e


def _read(zf, entry):
    with zf.open(entry + ".npy") as f:
        return np.lib.format.read_array(f, allow_pickle=False)


def _decode(node, zf, names):
    t = node["t"]
    if t == "scalar":
        return node["v"]
    if t in ("array", "npscalar", "tensor"):
        if node["entry"] + ".npy" not in names:
            raise KeyError(f"array entry {node['entry']!r} named by the manifest is missing")
        arr = _read(zf, node["entry"])
        if t == "npscalar":
            return arr[()]
        return Tensor(arr) if t == "tensor" else arr
    if t in ("dict", "odict"):
        pairs = [(k, _decode(v, zf, names)) for k, v in node["items"]]
        return OrderedDict(pairs) if t == "odict" else dict(pairs)
    if t in ("list", "tuple"):
        items = [_decode(v, zf, names) for v in node["items"]]
        return tuple(items) if t == "tuple" else items
    raise KeyError(f"unknown manifest node type {t!r}")
