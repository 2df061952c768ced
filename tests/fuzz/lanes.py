"""Break each lane of the engine's walk in a copy of the repo; the fuzzer must catch every one.

python -m tests.fuzz.lanes [--count N]: for each mutant below, copies microtensor/, models/
and tests/ to a temporary folder, applies one textual change to microtensor/autograd.py,
runs N fuzz programs there, and reports how many failed. A mutant the fuzzer misses is
listed at the end and the exit status is 1. (Disabling a fast lane outright, sending its
tensors down the general path, changes no result; these mutants break what the lanes do.)
"""
import argparse
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[2]

MUTANTS = {      # name: (the engine's text, what the mutant puts in its place)
    "lane owned: an in-place add dropped": (
        "                    prev = grads[ps]\n                    prev += gp\n",
        "                    pass\n"),
    "a second contribution overwrites the first": (
        "                grads[ps] = _sum(grads[ps], gp, ps, owned)\n            elif p is top:",
        "                grads[ps] = gp\n            elif p is top:"),
    "lane top: top's own gradient dropped when another arrives": (
        "                grads[ps] = _sum(top_g, gp, ps, owned)",
        "                grads[ps] = gp"),
    "lane top: taken out of creation order": (
        "                if heap and ps < -heap[0][0]:\n",
        "                if False:\n"),
    "lane top: a newer tensor not swapped in": (
        "            elif ps > top.seq:",
        "            elif False:"),
    "lane leaves: a leaf forgotten": (
        "                grads[ps] = gp                  # kept, not copied\n"
        "                leaves.append(p)\n",
        "                grads[ps] = gp\n"),
    "_sum adds into a buffer it does not own": (
        "    if s in owned:\n        prev += g\n        return prev\n",
        "    if True:\n        prev += g\n        return prev\n"),
    "_sum keeps the first structured gradient unmerged": (
        "        merged = prev.merge(g)\n        if merged is not None:\n            return merged\n",
        "        return prev\n"),
    "_conform skips unbroadcast": (
        "        g = unbroadcast(g, shape, node, p)\n",
        "        g = g.sum(axis=0) if g.ndim > len(shape) else g\n"),
}


def run_mutant(old, new, count):
    """Failed and passed program counts of the fuzzer on a copy of the repo with old → new."""
    with tempfile.TemporaryDirectory() as tmp:
        d = pathlib.Path(tmp)
        for part in ("microtensor", "models", "tests"):
            shutil.copytree(REPO / part, d / part, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
        engine = d / "microtensor" / "autograd.py"
        src = engine.read_text()
        if src.count(old) != 1:
            raise SystemExit(f"lanes: the engine no longer holds this text once:\n{old}")
        engine.write_text(src.replace(old, new))
        out = subprocess.run([sys.executable, "-m", "tests.fuzz", "--count", str(count),
                              "--seed", "1", "--examples", "1"], cwd=d, capture_output=True,
                             text=True, timeout=1800).stdout
    m = re.search(r"(\d+) passed, (\d+) failed", out)
    if m is None:
        raise SystemExit(f"lanes: unexpected fuzzer output:\n{out[-2000:]}")
    return int(m.group(2)), int(m.group(1))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.lanes", description=__doc__)
    parser.add_argument("--count", type=int, default=200, help="programs per mutant")
    args = parser.parse_args(argv)
    missed = []
    for name, (old, new) in MUTANTS.items():
        failed, passed = run_mutant(old, new, args.count)
        print(f"{name}: {failed} of {failed + passed} programs fail", flush=True)
        if failed == 0:
            missed.append(name)
    print("every mutant caught" if not missed else f"NOT CAUGHT: {missed}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
