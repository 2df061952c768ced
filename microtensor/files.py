"""Files written whole: atomic replacement of a regular file, and folders created exclusively."""
import contextlib
import os
import stat
import tempfile
from pathlib import Path

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


class NotARegularFile(OSError):
    """The path exists and is not a regular file (a directory, a FIFO, a device, a socket):
    atomic_write refuses it, since renaming a new file over it would replace the node itself."""


@contextlib.contextmanager
def atomic_write(path):
    """Yield a binary file; when the block ends it replaces the file at `path` whole.

    A symlink is followed: the file it points to is replaced (the temporary file is made in
    that file's folder, so the rename stays atomic) and the link stays a link. A path that
    exists and is not a regular file raises NotARegularFile before anything is written. If
    the block (or the write) fails, the file keeps its old content and the temporary file
    is removed: a reader never sees half a file, and nothing saved before is lost. The new
    file gets the old file's permissions, or a new file's usual ones.
    """
    path = os.fspath(path)
    target = os.path.realpath(path)
    _check_regular(path, target)
    folder = os.path.dirname(target)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(target)}.",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _mode(target))
        _check_regular(path, target)        # again: it may have changed while we wrote
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


def _check_regular(path, target):
    """NotARegularFile unless target (what path resolves to) is missing or a regular file."""
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    via = f" (which leads to '{target}')" if target != os.path.abspath(path) else ""
    raise NotARegularFile(f"'{path}'{via} is {kind}, not a regular file: refusing to "
                          f"replace it (write to a file path instead)")


def _mode(path):
    """An existing file's permissions, else 0666 less the umask (mkstemp makes 0600)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_dir(folder):
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    with contextlib.suppress(OSError):
        os.fsync(fd)
    os.close(fd)


def new_folder(parent, name, tries=1000):
    """Create and return parent/name, or parent/name-2, name-3, … when that is taken.

    Each try is one mkdir, which fails if the folder exists, so two processes asking at
    the same moment never get the same folder and an existing one is never reused.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    for i in range(1, tries + 1):
        folder = parent / (name if i == 1 else f"{name}-{i}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise FileExistsError(f"'{parent}' already holds {name} and {tries - 1} numbered "
                          f"variants of it (remove old ones)")
