"""mt.save / mt.load: round trips, resuming training, atomic saves, paths that are not regular
files, and files that are not ours (tests/test_crafted_checkpoints.py has the hostile ones)."""
import math
import os
import stat
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import microtensor as mt
import microtensor.functional as F
from microtensor.errors import CheckpointError
from microtensor.nn import Linear, Sequential, Tanh


def assert_same(a, b):
    """Equal values and equal types, recursively (arrays by dtype, shape and content)."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b


def test_round_trip_of_nested_structures(tmp_path):
    obj = {
        "model": OrderedDict([("fc.weight", np.arange(6.0).reshape(2, 3)),
                              ("fc.bias", np.zeros(2, dtype=np.float32))]),
        "optim": {"state": {0: {"step": 3, "exp_avg": np.ones(2)}},
                  "param_groups": [{"lr": 0.001, "betas": (0.9, 0.999), "params": [0, 1]}]},
        "step": 1200, "loss": 1.25, "neg_zero": -0.0, "inf": math.inf, "nan": math.nan,
        "name": "char-rnn ✓", "done": False, "note": None,
        "ints": np.array([1, 2, 3], dtype=np.int32), "flags": np.array([True, False]),
        "scalar": np.float32(2.5), "count": np.int64(7), "empty": np.zeros((0, 4)),
        "strings": np.array(["a", "bc"]), "fortran": np.asfortranarray(np.eye(3)[:, :2]),
        "nested": [[1, (2, "x")], {}],
        "a/b": np.ones(1), "a": {"b": np.zeros(1)},        # same path, two structures
    }
    path = tmp_path / "ckpt.npz"
    mt.save(obj, path)
    assert_same(mt.load(path), obj)
    assert_same(mt.load(str(path)), obj)


def test_128_bit_ints_and_rng_state_round_trip(tmp_path):
    big = {"pos": 2 ** 127 + 12345, "neg": -(2 ** 100), "huge": 10 ** 40}
    mt.manual_seed(42)
    mt.randn(3)
    state = mt.get_rng_state()
    assert state["state"]["state"] > 2 ** 64
    mt.save({"big": big, "rng": state}, tmp_path / "r.npz")
    back = mt.load(tmp_path / "r.npz")
    assert back["big"] == big and type(back["big"]["pos"]) is int
    expected = mt.randn(4).data
    mt.manual_seed(0)
    mt.set_rng_state(back["rng"])
    np.testing.assert_array_equal(mt.randn(4).data, expected)


def test_tensors_are_saved_as_their_data(tmp_path):
    t = mt.tensor([1.0, 2.0], requires_grad=True)
    mt.save({"t": t}, tmp_path / "t.npz")
    back = mt.load(tmp_path / "t.npz")["t"]
    assert isinstance(back, mt.Tensor) and not back.requires_grad
    np.testing.assert_array_equal(back.data, [1.0, 2.0])


def test_file_is_a_plain_npz_with_readable_names(tmp_path):
    mt.save({"model": {"fc.weight": np.ones((2, 2))}, "step": 3}, tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz", allow_pickle=False) as npz:
        assert "model/fc.weight" in npz.files
        np.testing.assert_array_equal(npz["model/fc.weight"], np.ones((2, 2)))


def test_unsavable_objects_are_rejected_before_writing(tmp_path):
    path = tmp_path / "x.npz"
    with pytest.raises(CheckpointError, match="cannot store a set at 'a/0'"):
        mt.save({"a": [{1, 2}]}, path)
    with pytest.raises(CheckpointError, match="dtype object"):
        mt.save({"a": np.array([None, 1], dtype=object)}, path)
    with pytest.raises(CheckpointError, match="key 1.5 .* must be str or int"):
        mt.save({1.5: 1}, path)
    assert list(tmp_path.iterdir()) == []


# ---- resuming --------------------------------------------------------------------------------
def make_run():
    mt.manual_seed(0)
    model = Sequential(Linear(3, 8), Tanh(), mt.nn.Dropout(0.2), Linear(8, 2))
    return model, mt.optim.Adam(model.parameters(), lr=0.01)


def train(model, opt, steps, seed):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x, y = rng.standard_normal((6, 3)), rng.integers(0, 2, 6)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()     # dropout draws from mt's generator
        opt.step()


def test_save_load_and_the_next_steps_equal_an_uninterrupted_run(tmp_path):
    model, opt = make_run()
    train(model, opt, 5, seed=1)
    mt.save({"model": model.state_dict(), "optim": opt.state_dict(), "step": 5,
             "rng": mt.get_rng_state()}, tmp_path / "ckpt.npz")
    train(model, opt, 3, seed=2)                       # the uninterrupted run

    fresh, fresh_opt = make_run()
    ckpt = mt.load(tmp_path / "ckpt.npz")
    fresh.load_state_dict(ckpt["model"])
    fresh_opt.load_state_dict(ckpt["optim"])
    mt.set_rng_state(ckpt["rng"])
    assert ckpt["step"] == 5
    train(fresh, fresh_opt, 3, seed=2)
    for (n, p), (_, q) in zip(model.named_parameters(), fresh.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=n)
    assert fresh_opt.param_groups[0]["betas"] == (0.9, 0.999)


# ---- atomicity -------------------------------------------------------------------------------
def failing_write_array(monkeypatch, exc, after=1):
    """Make the (after+1)-th array written inside save raise exc, half-way through the file."""
    real = np.lib.format.write_array
    calls = []

    def write_array(fp, array, *args, **kwargs):
        calls.append(1)
        if len(calls) > after:
            fp.write(b"\x93NUMPY partial")
            raise exc
        return real(fp, array, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", write_array)


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_interrupted_save_keeps_the_old_checkpoint_and_leaves_no_temp_file(tmp_path, monkeypatch,
                                                                           exc):
    path = tmp_path / "ckpt.npz"
    old = {"w": np.arange(3.0), "step": 1}
    mt.save(old, path)
    failing_write_array(monkeypatch, exc)
    with pytest.raises(type(exc)):
        mt.save({"w": np.ones(3), "v": np.zeros(2), "step": 2}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.npz"]
    assert_same(mt.load(path), old)


def test_failed_rename_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    mt.save({"step": 1}, path)

    def fail(*args):
        raise OSError("rename failed")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="rename failed"):
        mt.save({"step": 2}, path)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.npz"]
    assert mt.load(path) == {"step": 1}


def test_interrupted_first_save_leaves_nothing(tmp_path, monkeypatch):
    failing_write_array(monkeypatch, OSError("boom"), after=0)
    with pytest.raises(OSError):
        mt.save({"w": np.ones(2)}, tmp_path / "new.npz")
    assert list(tmp_path.iterdir()) == []


def test_save_overwrites_and_keeps_permissions(tmp_path):
    path = tmp_path / "ckpt.npz"
    mt.save({"step": 1}, path)
    os.chmod(path, 0o640)
    mt.save({"step": 2}, path)
    assert mt.load(path) == {"step": 2}
    assert os.stat(path).st_mode & 0o777 == 0o640


# ---- files that are not (whole) checkpoints --------------------------------------------------
def test_missing_file(tmp_path):
    path = tmp_path / "nope.npz"
    with pytest.raises(CheckpointError, match=f"no checkpoint at '{path}'"):
        mt.load(path)


def test_directory(tmp_path):
    with pytest.raises(CheckpointError, match=f"'{tmp_path}' is a directory"):
        mt.load(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match=f"'{path}' is empty"):
        mt.load(path)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.99])
def test_truncated_file(tmp_path, keep):
    path = tmp_path / "ckpt.npz"
    mt.save({"w": np.arange(1000.0), "step": 3}, path)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(CheckpointError, match=f"'{path}' is a truncated or corrupt"):
        mt.load(path)


def test_corrupted_bytes(tmp_path):
    path = tmp_path / "ckpt.npz"
    mt.save({"w": np.arange(1000.0)}, path)
    data = bytearray(path.read_bytes())
    data[2000:2010] = b"\xff" * 10                 # inside the array: the CRC catches it
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"'{path}' is a truncated or corrupt checkpoint "
                                              f"\\(Bad CRC-32"):
        mt.load(path)


def test_foreign_files(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match=f"'{text}' is not a checkpoint"):
        mt.load(text)
    npy = tmp_path / "a.npy"
    np.save(npy, np.ones(3))
    with pytest.raises(CheckpointError, match=f"'{npy}' is not a checkpoint"):
        mt.load(npy)
    npz = tmp_path / "plain.npz"
    np.savez(npz, w=np.ones(3))
    with pytest.raises(CheckpointError, match=f"'{npz}' is a zip/.npz file but not a "
                                              f"microtensor checkpoint"):
        mt.load(npz)
    pickled = tmp_path / "pickled.npz"
    with open(pickled, "wb") as f:
        np.save(f, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError, match=f"'{pickled}' is not a checkpoint"):
        mt.load(pickled)


def test_pickled_array_inside_a_checkpoint_is_refused(tmp_path):
    """A checkpoint whose array entry was swapped for a pickle is rejected, never unpickled."""
    path = tmp_path / "evil.npz"
    mt.save({"w": np.ones(2)}, path)
    with zipfile.ZipFile(path) as zf:
        manifest = zf.read("__microtensor_manifest__.npy")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("__microtensor_manifest__.npy", manifest)
        with zf.open("w.npy", "w") as f:
            np.lib.format.write_array(f, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(CheckpointError, match="evil.npz' is a corrupt checkpoint: member "
                                              "'w.npy' holds Python objects .* never unpickles"):
        mt.load(path)


def test_max_bytes_bounds_what_load_allocates_and_the_caller_can_raise_it(tmp_path):
    path = tmp_path / "big.npz"
    mt.save({"w": np.arange(100_000.0)}, path)             # 800,000 bytes of array
    with pytest.raises(CheckpointError, match=r"'.*big.npz' would need [\d,]+ bytes for its 1 "
                                              r"arrays and manifest, more than the limit of "
                                              r"100,000 \(max_bytes\).*max_bytes=\.\.\."):
        mt.load(path, max_bytes=100_000)
    np.testing.assert_array_equal(mt.load(path, max_bytes=2_000_000)["w"], np.arange(100_000.0))
    np.testing.assert_array_equal(mt.load(path)["w"], np.arange(100_000.0))   # the default


# ---- cycles and depth ------------------------------------------------------------------------
def test_a_structure_that_contains_itself_is_refused_before_writing(tmp_path):
    d = {"a": 1}
    d["self"] = d
    loop = [1]
    loop.append({"back": loop})
    path = tmp_path / "c.npz"
    with pytest.raises(CheckpointError, match=r"the dict at 'self' is the one at '<root>', "
                                              r"which contains it"):
        mt.save(d, path)
    with pytest.raises(CheckpointError, match=r"the list at 'x/1/back' is the one at 'x'"):
        mt.save({"x": loop}, path)
    assert list(tmp_path.iterdir()) == []
    shared = [np.ones(2), "s"]                           # shared, not cyclic: saved twice
    mt.save({"a": shared, "b": (shared, shared)}, path)
    assert_same(mt.load(path), {"a": shared, "b": (shared, shared)})


def nested(depth, leaf):
    for i in range(depth):
        leaf = {"k": leaf} if i % 2 else [leaf]
    return leaf


def test_nesting_is_limited_to_max_depth_on_save(tmp_path):
    from microtensor.serialization import MAX_DEPTH
    path = tmp_path / "deep.npz"
    deepest = nested(MAX_DEPTH, np.arange(3))            # 100 containers: fine
    mt.save(deepest, path)
    assert_same(mt.load(path), deepest)
    os.unlink(path)
    with pytest.raises(CheckpointError, match=rf"nested more than {MAX_DEPTH} deep, at "
                                              rf"'0/k/0/… \(94 more\) …/k/0/k'"):
        mt.save(nested(MAX_DEPTH + 1, 1), path)
    with pytest.raises(CheckpointError, match="nested more than"):
        mt.save(nested(5000, 1), path)                 # not a RecursionError
    assert list(tmp_path.iterdir()) == []


# ---- paths that are not regular files --------------------------------------------------------
def test_saving_through_a_symlink_replaces_its_target_atomically(tmp_path, monkeypatch):
    real, links = tmp_path / "real", tmp_path / "links"
    real.mkdir()
    links.mkdir()
    target = real / "ckpt.npz"
    mt.save({"step": 1}, target)
    os.chmod(target, 0o640)
    link = links / "latest.npz"
    link.symlink_to(target)
    chain = links / "chain.npz"                         # a link to the link
    chain.symlink_to(link)
    mt.save({"step": 2}, link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert mt.load(target) == {"step": 2} and stat.S_IMODE(os.stat(target).st_mode) == 0o640
    mt.save({"step": 3}, chain)
    assert chain.is_symlink() and link.is_symlink() and mt.load(target) == {"step": 3}
    failing_write_array(monkeypatch, OSError("disk full"), after=0)
    with pytest.raises(OSError, match="disk full"):
        mt.save({"w": np.ones(3)}, link)
    monkeypatch.undo()
    assert mt.load(target) == {"step": 3}
    assert sorted(p.name for p in real.iterdir()) == ["ckpt.npz"]   # no temporary file left
    assert sorted(p.name for p in links.iterdir()) == ["chain.npz", "latest.npz"]
    dangling = links / "new.npz"                        # a link to a file not yet written
    dangling.symlink_to(real / "new.npz")
    mt.save({"step": 4}, dangling)
    assert dangling.is_symlink() and mt.load(real / "new.npz") == {"step": 4}


@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink to a fifo"])
def test_saving_onto_a_fifo_or_directory_is_refused_and_leaves_it(tmp_path, kind):
    node = tmp_path / "node"
    if kind == "directory":
        node.mkdir()
        (node / "inside.txt").write_text("kept")
    else:
        os.mkfifo(node)
    path = node
    if kind == "symlink to a fifo":
        path = tmp_path / "ckpt.npz"
        path.symlink_to(node)
    word = "a directory" if kind == "directory" else r"a FIFO \(named pipe\)"
    via = rf" \(which leads to '{node}'\)" if kind.startswith("symlink") else ""
    with pytest.raises(CheckpointError, match=rf"^save: '{path}'{via} is {word}, not a regular "
                                              rf"file: refusing to replace it"):
        mt.save({"step": 1}, path)
    mode = os.lstat(node).st_mode
    assert stat.S_ISDIR(mode) if kind == "directory" else stat.S_ISFIFO(mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({"node", path.name})
    if kind == "directory":
        assert (node / "inside.txt").read_text() == "kept"


def test_saving_onto_a_character_device_is_refused(tmp_path, monkeypatch):
    """A clone of /dev/null where this process may create one (root), then /dev/null itself,
    with os.replace disabled so that even a broken check could not replace it."""
    clone = tmp_path / "null"
    try:
        os.mknod(clone, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, AttributeError):
        clone = None
    if clone is not None:
        with pytest.raises(CheckpointError, match=f"'{clone}' is a character device"):
            mt.save({"step": 1}, clone)
        assert stat.S_ISCHR(os.lstat(clone).st_mode) and os.listdir(tmp_path) == ["null"]

    def no_replace(*args):
        raise AssertionError(f"os.replace{args} called while saving to /dev/null")

    monkeypatch.setattr(os, "replace", no_replace)
    with pytest.raises(CheckpointError, match="^save: '/dev/null' is a character device, "
                                              "not a regular file: refusing to replace it"):
        mt.save({"step": 1}, "/dev/null")
    monkeypatch.undo()
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)
    assert not [n for n in os.listdir("/dev") if n.startswith(".null.")]   # no temporary file
