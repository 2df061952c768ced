"""Text for character-level models: the vocabulary, the default corpus, truncated-BPTT streams."""
from __future__ import annotations

import glob
import os
import sysconfig
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike
    from typing_extensions import Self

    from microtensor._types import StrPath

DEFAULT_MAX_BYTES = 300_000
MAX_TEXT_BYTES = 2 ** 27          # 128 MiB: more than enwik8; a bigger file is refused


class DataError(ValueError):
    """A text that cannot be trained on: missing, empty, binary, not UTF-8, or too short."""


class Vocab:
    """The sorted unique characters of a text: encode maps text to indices, decode maps back.

    Stored in checkpoints as its plain string `chars`; Vocab(chars) rebuilds it.
    """

    def __init__(self, chars: str) -> None:
        if not isinstance(chars, str) or not chars:
            raise ValueError(f"Vocab: expected a non-empty string of characters, got {chars!r}")
        if "".join(sorted(set(chars))) != chars:
            raise ValueError("Vocab: chars must be sorted and unique (use Vocab.from_text)")
        try:
            self._codes = _code_points(chars)  # sorted, so encode is one searchsorted
        except UnicodeEncodeError as e:
            raise ValueError(f"Vocab: chars holds {chars[e.start]!r}, a lone surrogate, not "
                             f"a character") from None
        self.chars = chars

    @classmethod
    def from_text(cls, text: str) -> Self:
        """The vocabulary of text's characters; DataError for an empty text."""
        if not text:
            raise DataError("cannot build a vocabulary from an empty text")
        return cls("".join(sorted(set(text))))

    def encode(self, text: str) -> np.ndarray:
        """The indices of text's characters, int64; DataError naming any unknown character."""
        cp = _code_points(text)
        idx = np.minimum(np.searchsorted(self._codes, cp), len(self._codes) - 1)
        unknown = self._codes[idx] != cp
        if unknown.any():
            bad = "".join(sorted(set(np.asarray(list(text))[unknown])))
            raise DataError(f"{len(bad)} character(s) not in the vocabulary of {len(self)}: "
                            f"{', '.join(repr(c) for c in bad[:10])}"
                            f"{' …' if len(bad) > 10 else ''}")
        return idx.astype(np.int64)

    def decode(self, indices: ArrayLike) -> str:
        """The text of the character indices (any shape, read in order)."""
        return "".join(self.chars[i] for i in np.asarray(indices).reshape(-1))

    def difference(self, other: Vocab, names: tuple[str, str] = ("this", "the other")) -> str:
        """A short text saying how this vocabulary differs from other ('' when equal)."""
        if self == other:
            return ""
        mine, theirs = set(self.chars), set(other.chars)
        parts = [f"{len(self)} characters in {names[0]}, {len(other)} in {names[1]}"]
        for label, cs in ((f"only in {names[0]}", mine - theirs),
                          (f"only in {names[1]}", theirs - mine)):
            if cs:
                text = "".join(sorted(cs))
                parts.append(f"{label}: {text[:12]!r}{' …' if len(text) > 12 else ''}")
        return ", ".join(parts)

    def __len__(self) -> int:
        return len(self.chars)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.chars == other.chars

    def __repr__(self) -> str:
        more = "…" if len(self) > 20 else ""
        return f"Vocab({len(self)} characters: {self.chars[:20]!r}{more})"


def _code_points(text):
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)


def stdlib_files() -> list[str]:
    """The default corpus's candidates: the public top-level modules of Python's standard
    library (stdlib/*.py, not _*.py, some of which are generated per machine), sorted."""
    root = sysconfig.get_paths()["stdlib"]
    return sorted(p for p in glob.glob(os.path.join(root, "*.py"))
                  if not os.path.basename(p).startswith("_"))


def corpus_files(max_bytes: int = DEFAULT_MAX_BYTES) -> list[str]:
    """The files load_corpus() reads by default: stdlib_files() in order until max_bytes."""
    files, total = [], 0
    for f in stdlib_files():
        if total >= max_bytes:
            break
        files.append(f)
        total += os.path.getsize(f)
    return files


def read_text(path: StrPath, max_bytes: int = MAX_TEXT_BYTES, cut: bool = False) -> str:
    """A file's text, or DataError saying in one line what is wrong and what to do.

    Reads at most max_bytes: a longer file is a DataError, or with cut=True is cut there
    (a character split by the cut is dropped). Reading stops at the first chunk holding a
    NUL byte, so a binary file or a device such as /dev/zero is refused at once.
    """
    chunks, size = [], 0
    try:
        with open(path, "rb") as f:
            while size <= max_bytes:
                chunk = f.read(min(1 << 20, max_bytes + 1 - size))
                if not chunk:
                    break
                nul = chunk.find(b"\0")
                if nul >= 0:
                    raise DataError(f"'{path}' contains NUL bytes (the first at byte "
                                    f"{size + nul:,}), so it looks binary, not text (pass a "
                                    f"UTF-8 text file)")
                chunks.append(chunk)
                size += len(chunk)
    except FileNotFoundError:
        raise DataError(f"data file '{path}' does not exist (check the path)") from None
    except IsADirectoryError:
        raise DataError(f"'{path}' is a directory, not a text file (pass a file)") from None
    except OSError as e:
        raise DataError(f"cannot read '{path}': {e.strerror} (check its permissions)") from None
    raw = b"".join(chunks)
    del chunks
    if size > max_bytes:
        if not cut:
            raise DataError(f"'{path}' holds more than {max_bytes:,} bytes, the most a "
                            f"training text may have (train on a part of it: head -c "
                            f"{max_bytes} FILE > part.txt)")
        raw = raw[:max_bytes]
    if not raw:
        raise DataError(f"data file '{path}' is empty (pass a non-empty UTF-8 text file)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        if cut and e.start >= len(raw) - 3 and e.reason == "unexpected end of data":
            text = raw[:e.start].decode("utf-8")
        else:
            raise DataError(f"'{path}' is not UTF-8 text (byte 0x{raw[e.start]:02x} at offset "
                            f"{e.start}; convert it, e.g. iconv -f latin1 -t utf-8, or pass "
                            f"another file)") from None
    return text.removeprefix("\ufeff")


def load_corpus(path: StrPath | None = None, max_bytes: int | None = None) -> str:
    """The training text: the file at path, or by default Python's own standard library.

    The default corpus is read at run time from the interpreter's stdlib folder (every
    machine with Python has it): corpus_files(), whole files in sorted order, joined and cut
    to max_bytes (DEFAULT_MAX_BYTES when None). A given file is read whole (up to
    MAX_TEXT_BYTES, beyond which it is refused) unless max_bytes is set, which cuts it.
    Raises DataError for a missing, empty, binary, non-UTF-8 or too long file.
    """
    if path is not None:
        if max_bytes is None:
            return read_text(path)
        return read_text(path, max_bytes, cut=True)
    max_bytes = DEFAULT_MAX_BYTES if max_bytes is None else max_bytes
    files = corpus_files(max_bytes)
    if not files:
        raise DataError(f"found no .py files in the standard library folder "
                        f"'{sysconfig.get_paths()['stdlib']}' (pass a text file instead)")
    return _cut("".join(read_text(f) for f in files).encode("utf-8"), max_bytes)


def _cut(raw, max_bytes):
    """The first max_bytes bytes as text, dropping a character the cut splits in two."""
    return raw[:max_bytes].decode("utf-8", errors="ignore")


def check_length(n: int, batch_size: int, seq_len: int) -> None:
    """DataError unless n characters give each of batch_size streams one chunk of seq_len."""
    for name, v in (("batch_size", batch_size), ("seq_len", seq_len)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    need = batch_size * seq_len + 1
    if n < need:
        raise DataError(f"the text has {n} characters, too few for {batch_size} stream(s) of "
                        f"{seq_len}-character sequences, which need at least B·T + 1 = {need} "
                        f"(use a longer text or a smaller sequence length or batch)")


def batches(data: ArrayLike, batch_size: int, seq_len: int, seed: int = 0,
            start: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray, bool]]:
    """Yield (xs, ys, fresh) for steps start, start + 1, … (forever): truncated-BPTT chunks.

    The text is cut into B = batch_size contiguous streams of L = (N − 1) // B characters,
    stream b starting at b·L. Step k gives the next T = seq_len characters of every stream
    as xs (T, B) and the characters one further on as ys (T, B), so the state a model ends
    a chunk with in column b is the state to carry into that stream's next chunk. An epoch
    ends when a stream has no full chunk left; each starts at an offset in [0, T) drawn
    from (seed, epoch), so chunk boundaries differ between epochs, and its first step has
    fresh=True: the carried state must restart from zeros there. The position is a
    function of the step alone, so start=k resumes exactly where step k would be.
    """
    data = np.asarray(data)
    if data.ndim != 1 or data.dtype.kind not in "iu":
        raise ValueError(f"batches: data must be a 1-D array of character indices, got "
                         f"shape {data.shape}, dtype {data.dtype}")
    check_length(len(data), batch_size, seq_len)
    if start < 0:
        raise ValueError(f"batches: start must be >= 0, got {start}")
    return _chunks(data, batch_size, seq_len, seed, start)


def _epoch(seed, epoch, L, T):
    """(offset, number of chunks) of one epoch."""
    offset = int(np.random.default_rng([seed, epoch]).integers(0, min(T, L - T + 1)))
    return offset, (L - offset) // T


def _chunks(data, B, T, seed, start):
    L = (len(data) - 1) // B
    cols = np.arange(B) * L
    rows = np.arange(T)[:, None]
    epoch = 0
    offset, n = _epoch(seed, epoch, L, T)
    chunk = start
    while chunk >= n:                       # skip whole epochs up to step `start`
        chunk -= n
        epoch += 1
        offset, n = _epoch(seed, epoch, L, T)
    while True:
        idx = cols + rows + (offset + chunk * T)
        yield data[idx], data[idx + 1], chunk == 0
        chunk += 1
        if chunk == n:
            chunk, epoch = 0, epoch + 1
            offset, n = _epoch(seed, epoch, L, T)
