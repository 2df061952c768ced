"""Print a digest of this Python's site-packages (every file's path, size and mtime), so CI can
check that `make test` on a fresh clone installed nothing into the system's Python.

Bytecode caches (__pycache__) are left out: importing an installed module may write one."""
import hashlib
import os
import site
import sys

dirs = sorted({os.path.realpath(d) for d in [*site.getsitepackages(), site.getusersitepackages()]
               if os.path.isdir(d)})
h = hashlib.sha256()
count = 0
for top in dirs:
    for root, subdirs, files in os.walk(top):
        subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
        for name in sorted(files):
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            count += 1
print(f"{h.hexdigest()} {count} files in {' '.join(dirs) or '(none)'} ({sys.executable})")
