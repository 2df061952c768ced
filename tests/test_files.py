"""microtensor.files: new_folder never hands out a folder that exists; atomic_write's refusals
(its atomicity is tested through mt.save in test_serialization.py)."""
import os
import threading

import pytest

from microtensor.files import NotARegularFile, atomic_write, new_folder


def test_new_folder_never_reuses_an_existing_folder(tmp_path):
    first = new_folder(tmp_path / "runs", "char_rnn-20261201-101500")
    (first / "checkpoint.npz").write_bytes(b"saved")
    second = new_folder(tmp_path / "runs", "char_rnn-20261201-101500")
    third = new_folder(tmp_path / "runs", "char_rnn-20261201-101500")
    assert [first.name, second.name, third.name] == [
        "char_rnn-20261201-101500", "char_rnn-20261201-101500-2", "char_rnn-20261201-101500-3"]
    assert (first / "checkpoint.npz").read_bytes() == b"saved"
    assert list(second.iterdir()) == [] and list(third.iterdir()) == []


def test_new_folder_gives_threads_racing_for_one_name_a_folder_each(tmp_path):
    got, start = [], threading.Barrier(8)

    def take():
        start.wait()
        got.append(new_folder(tmp_path, "run"))

    workers = [threading.Thread(target=take) for _ in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(p.name for p in got) == sorted(["run"] + [f"run-{i}" for i in range(2, 9)])


def test_new_folder_gives_up_after_its_tries(tmp_path):
    for name in ("run", "run-2", "run-3"):
        (tmp_path / name).mkdir()
    with pytest.raises(FileExistsError, match="already holds run and 2 numbered variants"):
        new_folder(tmp_path, "run", tries=3)


def test_atomic_write_refuses_a_fifo_before_writing_anything(tmp_path):
    fifo = tmp_path / "loss.png"
    os.mkfifo(fifo)
    with pytest.raises(NotARegularFile, match=r"is a FIFO \(named pipe\), not a regular file"):
        with atomic_write(fifo) as f:
            f.write(b"never")
    assert os.listdir(tmp_path) == ["loss.png"]


def test_atomic_write_refuses_a_path_that_became_a_directory_while_writing(tmp_path):
    path = tmp_path / "sample.txt"
    with pytest.raises(NotARegularFile, match="is a directory"):
        with atomic_write(path) as f:
            f.write(b"text")
            path.mkdir()                  # something else took the name meanwhile
    assert os.listdir(tmp_path) == ["sample.txt"] and path.is_dir()
