"""mt.load on hostile files: a corpus generated here (nothing is committed as a binary) of
truncations and single-byte flips at every offset, huge declared sizes, a deflate bomb, pickles,
deep nesting and wrong types. Every file gives one CheckpointError naming it, or, where a flip
hit a field the zip reader ignores, loads equal to the original; no pickle code ever runs."""
import io
import json
import os
import pickle
import re
import stat
import struct
import threading
import zipfile

import numpy as np
import pytest

import microtensor as mt
from microtensor.errors import CheckpointError
from microtensor.serialization import MANIFEST, MAX_DEPTH, MIN_CEILING

from test_serialization import assert_same


class Marker:
    """Unpickling this creates the file `path`: proof that pickle code ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


@pytest.fixture(autouse=True)
def no_unpickling(monkeypatch, tmp_path):
    """Any call into pickle's loaders fails the test, and so does the marker file appearing."""
    def refuse(*args, **kwargs):
        raise AssertionError("pickle was asked to load data")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    marker = tmp_path / "pickle-ran"
    yield marker
    assert not marker.exists(), "unpickling ran code from a checkpoint"


def expect_error(path, pattern, **kwargs):
    """load(path) raises one CheckpointError, one line, naming path, matching pattern."""
    try:                                # not pytest.raises: the corpus makes thousands
        got = mt.load(path, **kwargs)
    except CheckpointError as e:
        message = str(e)
    else:
        raise AssertionError(f"{path} loaded as {got!r:.200}")
    assert message.startswith(f"load: '{path}' ") and "\n" not in message, message
    assert pattern is None or re.search(pattern, message), message
    return message


# ---- building files ------------------------------------------------------------------------------
BASE = {"w": np.arange(6.0).reshape(2, 3), "f": np.asfortranarray(np.eye(2, 3, dtype=np.float32)),
        "s": np.int64(7), "o": {"a": 1, 2: None}, "l": [1, (2.5, True), "x ✓"], "big": 2 ** 100}


def npy(arr):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=True)
    return buf.getvalue()


def npy_header(descr, shape, fortran=False):
    """A version 1.0 .npy header (NEP 1) declaring any descr and shape, for crafted members."""
    text = repr({"descr": descr, "fortran_order": fortran, "shape": shape}).encode("latin1")
    text += b" " * (63 - (10 + len(text)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text


def manifest(tree, **top):
    body = {"format": "microtensor-checkpoint", "version": 1, "tree": tree, **top}
    return npy(np.frombuffer(json.dumps(body).encode(), dtype=np.uint8))


def array_node(entry, t="array"):
    return {"t": t, "entry": entry}


def write_zip(path, members, compression=zipfile.ZIP_STORED):
    """A zip of {name: bytes} (names without .npy get it appended)."""
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name if name.endswith(".npy") else name + ".npy", data)
    return path


def one_array(tree=None, **members):
    """The members of a checkpoint holding {'w': <array w>} (or `tree`), with overrides."""
    return {MANIFEST: manifest(tree or {"t": "dict", "items": [["w", array_node("w")]]}),
            "w": npy(np.arange(3.0)), **members}


def patch_central(data, name, offset, fmt, value):
    """data with one field (at offset, struct format fmt) of name's central entry set."""
    data = bytearray(data)
    end = data.rindex(b"PK\x05\x06")
    at = struct.unpack("<I", data[end + 16:end + 20])[0]
    while True:
        n, m, k = struct.unpack("<HHH", data[at + 28:at + 34])
        if data[at + 46:at + 46 + n] == name.encode():
            struct.pack_into(fmt, data, at + offset, value)
            return bytes(data)
        at += 46 + n + m + k


def patched(members, *patches, compression=zipfile.ZIP_STORED):
    """A recipe: the zip of members, then (member, offset, format, value) central patches."""
    def make(folder):
        path = write_zip(folder / "f.npz", members, compression)
        data = path.read_bytes()
        for patch in patches:
            data = patch_central(data, *patch)
        path.write_bytes(data)
        return path
    return make


def raw(make_bytes):
    """A recipe: a file of make_bytes(folder) (for files that are not zips at all)."""
    def make(folder):
        path = folder / "f.npz"
        path.write_bytes(make_bytes(folder))
        return path
    return make


def with_marker(make_members):
    """A recipe: a zip of make_members(marker path), for pickles that would create it."""
    return lambda folder: write_zip(folder / "f.npz", make_members(folder / "pickle-ran"))


def json_manifest(text):
    return {MANIFEST: npy(np.frombuffer(text.encode(), np.uint8))}


# ---- the zip's fields, for the flip corpus -------------------------------------------------------
LOCAL = [("signature", 4), ("version needed", 2), ("flags", 2), ("method", 2), ("time", 2),
         ("date", 2), ("crc", 4), ("compressed size", 4), ("size", 4), ("name length", 2),
         ("extra length", 2)]
CENTRAL = [("signature", 4), ("version made by", 2), ("version needed", 2), ("flags", 2),
           ("method", 2), ("time", 2), ("date", 2), ("crc", 4), ("compressed size", 4),
           ("size", 4), ("name length", 2), ("extra length", 2), ("comment length", 2),
           ("disk", 2), ("internal attributes", 2), ("external attributes", 4), ("offset", 4)]
END = [("signature", 4), ("disk", 2), ("directory disk", 2), ("entries on disk", 2),
       ("entries", 2), ("directory size", 4), ("directory offset", 4), ("comment length", 2)]


def zip_fields(data):
    """{offset: (part, field, start of the field, is in the last central entry)} for every
    byte of a zip without data descriptors; part is local, member (the data), central or end."""
    out = {}

    def put(start, layout, part, last=False):
        for name, n in layout:
            for j in range(n):
                out[start + j] = (part, name, start, last)
            start += n
        return start

    end = data.rindex(b"PK\x05\x06")
    put(end, END, "end")
    size, first = struct.unpack("<II", data[end + 12:end + 20])
    at = first
    while at < first + size:
        n, m, k = struct.unpack("<HHH", data[at + 28:at + 34])
        csize, = struct.unpack("<I", data[at + 20:at + 24])
        local, = struct.unpack("<I", data[at + 42:at + 46])
        last = at + 46 + n + m + k == first + size
        p = put(at, CENTRAL, "central", last)
        for part, length, start in (("name", n, p), ("extra", m + k, p + n)):
            for j in range(length):
                out[start + j] = ("central", part, start, last)
        ln, lm = struct.unpack("<HH", data[local + 26:local + 30])
        q = put(local, LOCAL, "local")
        for part, length, start in (("name", ln, q), ("extra", lm, q + ln),
                                    ("data", csize, q + ln + lm)):
            for j in range(length):
                out[start + j] = ("local" if part != "data" else "member", part, start, False)
        at += 46 + n + m + k
    assert sorted(out) == list(range(len(data)))
    return out


# Fields zipfile (CPython 3.11) never reads, or reads only where our files' values leave no
# difference: a flip there must load the original exactly; a flip anywhere else must raise.
IGNORED = {("local", f) for f in ("version needed", "flags", "method", "time", "date", "crc",
                                  "compressed size", "size", "extra")} | \
          {("central", f) for f in ("version made by", "time", "date", "disk",
                                    "internal attributes", "external attributes")} | \
          {("end", f) for f in ("disk", "directory disk", "entries on disk", "entries",
                                "comment length")}


def harmless(data, flipped, field):
    part, name, start, last = field
    if (part, name) in IGNORED:
        return True
    old, new = data[start:start + 2], flipped[start:start + 2]
    if (part, name) == ("central", "version needed"):     # (version, host system) bytes
        return new[0] <= 63                                 # zipfile reads up to version 6.3
    if (part, name) == ("central", "flags"):              # encrypted (1) or patched (0x60)
        return not new[0] & 0x61                            # are refused; the rest unread
    if (part, name) in {("central", "name length"), ("central", "extra length"),
                        ("central", "comment length")} and last:
        # the last entry ends the directory: a longer length is cut at its end, so the
        # name, extra field and comment read are the same
        return int.from_bytes(new, "little") > int.from_bytes(old, "little")
    return False


def test_every_truncation_and_every_byte_flip_is_an_error_or_loads_unchanged(tmp_path):
    good = tmp_path / "good.npz"
    mt.save(BASE, good)
    data = good.read_bytes()
    fields = zip_fields(data)
    path = tmp_path / "bad.npz"
    outcomes = {"error": 0, "unchanged": 0}
    for n in range(len(data)):
        path.write_bytes(data[:n])
        expect_error(path, r"is empty|is not a checkpoint|truncated or corrupt")
        outcomes["error"] += 1
    for i in range(len(data)):
        # a member's bytes are all under its CRC: one flip each; every field gets two
        for pattern in (0xFF,) if fields[i][0] == "member" else (0xFF, 0x01):
            flipped = bytearray(data)
            flipped[i] ^= pattern
            path.write_bytes(flipped)
            if harmless(data, flipped, fields[i]):
                assert_same(mt.load(path), BASE)
                outcomes["unchanged"] += 1
            else:
                expect_error(path, None)
                outcomes["error"] += 1
    in_members = sum(f[0] == "member" for f in fields.values())
    assert outcomes["error"] + outcomes["unchanged"] == 3 * len(data) - in_members
    assert outcomes["unchanged"] >= 300 and outcomes["error"] >= 3000    # both kinds were met


# ---- crafted files ------------------------------------------------------------------------------
def deep_json(depth):
    tree = {"t": "scalar", "v": 1}
    for _ in range(depth):
        tree = {"t": "list", "items": [tree]}
    return tree


def deep_dicts(depth):
    tree = {"t": "scalar", "v": 1}
    for _ in range(depth):
        tree = {"t": "dict", "items": [["k", tree]]}
    return tree


HUGE = 2 ** 43 // 8                                           # 8 TiB of float64

SIZE, CSIZE, FLAGS, METHOD = 24, 20, 8, 10      # offsets of central-directory fields
pickled = lambda marker: npy(np.array([Marker(marker)], dtype=object))    # noqa: E731
FOUR_GIB = 2 ** 32 - 16

# name: (members, or a recipe making the file in a folder; pattern its message must match)
CRAFTED = {
    "npy header claims 8 TiB": (one_array(w=npy_header("<f8", (HUGE,)) + bytes(16)),
                                r"member 'w.npy' declares an array of 8,796,093,022,208 bytes "
                                r"\(float64, shape \(1099511627776,\)\) but holds 16"),
    "npy shape overflows int64": (one_array(w=npy_header("<f8", (2 ** 62, 2 ** 62))),
                                  r"declares an array of [\d,]{30,} bytes"),
    "npy negative dimension": (one_array(w=npy_header("<f8", (-1,))), "malformed .npy header"),
    "npy dimension not an int": (one_array(w=npy_header("<f8", (2.0,))),
                                 "malformed .npy header"),
    "npy unknown dtype": (one_array(w=npy_header("<f9", (1,)) + bytes(9)), "unknown dtype"),
    "npy header not a literal": (one_array(w=b"\x93NUMPY\x01\x00\x10\x00__import__('os')\n"),
                                 "unreadable .npy header"),
    "npy header cut short": (one_array(w=npy_header("<f8", (1,))[:30]), "ends inside its .npy"),
    "npy header of 4 GiB": (one_array(w=b"\x93NUMPY\x02\x00\xff\xff\xff\xff{"),
                            r"a \.npy header of 4,294,967,295 bytes"),
    "member with trailing bytes": (one_array(w=npy(np.arange(3.0)) + b"\0" * 8),
                                   r"declares an array of 24 bytes .* but holds 32"),
    "member cut short": (one_array(w=npy(np.arange(3.0))[:-8]),
                         r"declares an array of 24 bytes .* but holds 16"),
    "member not npy": (one_array(w=b"PK\x03\x04 a zip in a zip"), "is not a .npy array"),
    "pickled array member": (with_marker(lambda m: one_array(w=pickled(m))),
                             r"member 'w.npy' holds Python objects \(pickled data\), which "
                             r"load never unpickles"),
    "pickled manifest": (with_marker(lambda m: {MANIFEST: pickled(m)}),
                         r"member '__microtensor_manifest__.npy' holds Python objects"),
    "raw pickle as manifest": (with_marker(lambda m: {MANIFEST: pickle.dumps(Marker(m))}),
                               "is not a .npy array"),
    "raw pickle file": (raw(lambda d: pickle.dumps(Marker(d / "pickle-ran"))),
                        r"is not a checkpoint \(not an .npz file\)"),
    "pickled .npy file": (raw(lambda d: pickled(d / "pickle-ran")), r"not an .npz file"),
    "manifest nested 5,000 deep": (json_manifest(       # as text: json.dumps would recurse
        '{"format": "microtensor-checkpoint", "version": 1, "tree": ' +
        '{"t": "list", "items": [' * 5000 + '{"t": "scalar", "v": 1}' + "]}" * 5000 + "}"),
                                   f"nests containers more than {MAX_DEPTH} deep"),
    "manifest of 101 dicts": ({MANIFEST: manifest(deep_dicts(MAX_DEPTH + 1))},
                              f"nests containers more than {MAX_DEPTH} deep"),
    "manifest of 101 lists": ({MANIFEST: manifest(deep_json(MAX_DEPTH + 1))},
                              f"nests containers more than {MAX_DEPTH} deep"),
    "scalar value nested 900 deep": (json_manifest(
        '{"format": "microtensor-checkpoint", "version": 1, "tree": {"t": "scalar", "v": ' +
        "[" * 900 + "]" * 900 + "}}"), "nests containers"),
    "manifest is a list": (json_manifest("[1, 2]"), "not an object with a 'tree'"),
    "manifest not JSON": (json_manifest("{'tree': 1}"),
                          r"truncated or corrupt checkpoint \(JSONDecodeError"),
    "manifest not UTF-8": ({MANIFEST: npy(np.frombuffer(b'{"tree": "\xff"}', np.uint8))},
                           r"\(UnicodeDecodeError"),
    "manifest of floats": ({MANIFEST: npy(np.zeros(4))}, r"manifest is an array of float64"),
    "manifest 2-D": ({MANIFEST: npy(np.zeros((2, 2), np.uint8))}, r"shape \(2, 2\)"),
    "int of 5,000 digits": (json_manifest(
        '{"format": "microtensor-checkpoint", "version": 1, "tree": {"t": "scalar", "v": ' +
        "9" * 5000 + "}}"), r"\(ValueError: Exceeds the limit"),
    "other format": ({MANIFEST: manifest(1, format="something-else")},
                     "manifest of unknown format 'something-else'"),
    "newer version": ({MANIFEST: manifest(deep_json(0), version=2)}, "is checkpoint version 2"),
    "version a string": ({MANIFEST: manifest(deep_json(0), version="1")},
                         r"version is '1', not a positive integer"),
    "version zero": ({MANIFEST: manifest(deep_json(0), version=0)}, "version is 0"),
    "tree missing": (json_manifest('{"format": "microtensor-checkpoint", "version": 1}'),
                     "not an object with a 'tree'"),
    "node not an object": ({MANIFEST: manifest(5)}, "node at '<root>' is not a typed node"),
    "unknown node type": ({MANIFEST: manifest({"t": "set", "items": []})},
                          "unknown manifest node type 'set' at '<root>'"),
    "items not a list": ({MANIFEST: manifest({"t": "dict", "items": {"a": 1}})},
                         "the dict at '<root>' has no list of items"),
    "dict item not a pair": ({MANIFEST: manifest({"t": "dict", "items": [["a"]]})},
                             r"not a \[key, value\] pair"),
    "float key": ({MANIFEST: manifest({"t": "dict", "items": [[1.5, deep_json(0)]]})},
                  "bad or repeated key 1.5"),
    "bool key": ({MANIFEST: manifest({"t": "dict", "items": [[True, deep_json(0)]]})},
                 "bad or repeated key True"),
    "repeated key": ({MANIFEST: manifest({"t": "dict", "items": [["a", deep_json(0)]] * 2})},
                     "bad or repeated key 'a'"),
    "scalar holding a dict": ({MANIFEST: manifest({"t": "scalar", "v": {"a": 1}})},
                              "the scalar at '<root>' is a dict"),
    "scalar without value": ({MANIFEST: manifest({"t": "scalar"})},
                             "the scalar at '<root>' is a tuple"),
    "entry not a string": ({MANIFEST: manifest(array_node(3))}, "names no entry"),
    "entry missing": ({MANIFEST: manifest(array_node("nope"))},
                      "array entry 'nope' named by the manifest is missing"),
    "entry named 1,000 times": (one_array({"t": "list", "items": [array_node("w")] * 1000}),
                                "array entry 'w' is named twice"),
    "npscalar of shape (3,)": (one_array(array_node("w", "npscalar")),
                               r"NumPy scalar in the manifest but has shape \(3,\)"),
    "stored member claims 4 GiB": (patched(one_array(), ("w.npy", SIZE, "<I", FOUR_GIB)),
                                   r"member 'w.npy' is stored uncompressed but declares "
                                   r"4,294,967,280 bytes and 152 stored"),
    "stored 4 GiB outside the file": (patched(one_array(), ("w.npy", SIZE, "<I", FOUR_GIB),
                                              ("w.npy", CSIZE, "<I", FOUR_GIB)),
                                      r"declares 4,294,967,280 bytes at offset \d+, outside "
                                      r"the [\d,]+-byte file"),
    "deflated member claims 4 GiB": (patched(one_array(), ("w.npy", SIZE, "<I", FOUR_GIB),
                                             compression=zipfile.ZIP_DEFLATED),
                                     r"would need [\d,]+ bytes for its 1 arrays and manifest, "
                                     rf"more than the limit of {MIN_CEILING:,} \(max_bytes\)"),
    "encrypted member": (patched(one_array(), ("w.npy", FLAGS, "<H", 1)),
                         r"member 'w.npy' is encrypted or patched \(zip flags 0x0001\)"),
    "stored member said deflated": (patched(one_array(), ("w.npy", METHOD, "<H", 8)),
                                    r"truncated or corrupt checkpoint \((Bad CRC|zlib)"),
    "bzip2 member": (lambda d: write_zip(d / "f.npz", one_array(), zipfile.ZIP_BZIP2),
                     "uses zip compression method 12; checkpoints are stored or deflated"),
    "lzma member": (lambda d: write_zip(d / "f.npz", one_array(), zipfile.ZIP_LZMA),
                    "uses zip compression method 14"),
    "no manifest": ({"w": npy(np.ones(2))}, "is a zip/.npz file but not a microtensor"),
    "empty zip": ({}, r"not an .npz file"),
}


@pytest.mark.parametrize("name", list(CRAFTED))
def test_crafted_file_gives_one_checkpoint_error(tmp_path, name):
    recipe, pattern = CRAFTED[name]
    path = recipe(tmp_path) if callable(recipe) else write_zip(tmp_path / "f.npz", recipe)
    expect_error(path, pattern)


def test_a_deflate_bomb_is_refused_unless_the_caller_raises_the_limit(tmp_path):
    """72 MiB of zeros deflated to ~70 KB: refused by the default ceiling before anything is
    decompressed; with max_bytes raised it loads, and equals what was written."""
    n = 72 * 2 ** 20 // 8
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST + ".npy", manifest({"t": "dict", "items": [["w", array_node("w")]]}))
        with zf.open("w.npy", "w") as f:
            f.write(npy_header("<f8", (n,)))
            chunk = bytes(2 ** 20)
            for _ in range(72):
                f.write(chunk)
    assert os.path.getsize(path) < 200_000
    expect_error(path, rf"would need 7\d,\d{{3}},\d{{3}} bytes for its 1 arrays and manifest, "
                       rf"more than the limit of {MIN_CEILING:,} \(max_bytes\)")
    w = mt.load(path, max_bytes=2 ** 27)["w"]
    assert w.shape == (n,) and w.dtype == np.float64 and not w.any()


def test_a_deflated_member_longer_than_it_declares_is_cut_and_caught(tmp_path):
    """A member whose deflate stream holds more than its declared size: the reader stops at the
    declared size, and the CRC (of all the data) does not match."""
    path = write_zip(tmp_path / "f.npz", one_array(w=npy(np.zeros(3)) + bytes(2 ** 20)),
                     zipfile.ZIP_DEFLATED)
    declared = len(npy(np.zeros(3)))
    path.write_bytes(patch_central(path.read_bytes(), "w.npy", 24, "<I", declared))
    expect_error(path, r"Bad CRC-32 for file 'w.npy'")


@pytest.mark.parametrize("kind", ["fifo", "directory", "device"])
def test_loading_what_is_not_a_regular_file_neither_blocks_nor_reads(tmp_path, kind):
    path = {"fifo": tmp_path / "pipe", "directory": tmp_path, "device": "/dev/zero"}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    word = {"fifo": r"a FIFO \(named pipe\)", "directory": "a directory", "device": "a device"}
    result = []
    worker = threading.Thread(target=lambda: result.append(
        expect_error(path, rf"is {word[kind]}, not a checkpoint file")))
    worker.start()
    worker.join(timeout=30)
    if worker.is_alive():                              # unblock a reader stuck on the FIFO
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        worker.join()
    assert len(result) == 1
    if kind == "fifo":
        assert stat.S_ISFIFO(os.lstat(path).st_mode)


def test_an_unreadable_file_is_named(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    path = tmp_path / "locked.npz"
    mt.save({"a": 1}, path)
    os.chmod(path, 0)
    expect_error(path, "cannot open .*Permission denied")


def test_an_intact_deflated_checkpoint_loads_equal(tmp_path):
    """A checkpoint repacked with deflate (as np.savez_compressed writes) loads as saved."""
    good = tmp_path / "good.npz"
    mt.save(BASE, good)
    packed = tmp_path / "packed.npz"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    assert os.path.getsize(packed) < os.path.getsize(good)
    assert_same(mt.load(packed), BASE)
