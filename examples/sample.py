"""Generate text from a model saved by char_rnn.py.

    python examples/sample.py --checkpoint runs/char_rnn-<time>/checkpoint.npz --prime "def "

Prints the prime followed by --length generated characters. A bad checkpoint (missing,
corrupt, crafted, or not of a CharLM), a prime with characters the model never saw, or an
option out of range exits with status 2 and a one-line "error: …" on stderr.
"""
import argparse
import math
import sys

import numpy as np

import microtensor as mt
from microtensor.models.charlm import CharLM, DataError, load_checkpoint

MAX_LENGTH = 10_000_000      # about ten minutes of sampling; the output is held in memory
MIN_TEMPERATURE = 1e-3       # below it sampling is greedy anyway: the likeliest character


class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"error: {message} (see --help)\n")


def number(kind, low, high, what):
    """An argparse type: kind(s) within [low, high], else a message saying what was expected."""
    def parse(s):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}") from None
        if not low <= v <= high:
            raise argparse.ArgumentTypeError(f"must be {what}, got {s}")
        return v
    return parse


def main(argv=None):
    p = Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, metavar="PATH",
                   help="checkpoint.npz written by examples/char_rnn.py")
    p.add_argument("--length", type=number(int, 1, MAX_LENGTH, f"an integer from 1 to "
                                                               f"{MAX_LENGTH:,}"),
                   default=500, metavar="N", help="characters to generate (default 500)")
    p.add_argument("--prime", default="\n", help="text to start from; the model reads it "
                   "first, then continues it (default: a newline)")
    p.add_argument("--temperature", type=number(float, MIN_TEMPERATURE, sys.float_info.max,
                                                f"a finite number >= {MIN_TEMPERATURE:g} "
                                                f"(lower samples the likeliest character "
                                                f"anyway)"),
                   default=0.8, help="sampling temperature: lower is more conservative "
                   "(default 0.8)")
    p.add_argument("--seed", type=number(int, 0, math.inf, "an integer >= 0"), default=0,
                   help="seed of the sampling (default 0)")
    args = p.parse_args(argv)

    ck = load_checkpoint(args.checkpoint)
    model = CharLM(**ck["model_config"])
    try:
        model.load_state_dict(ck["model"])
    except mt.CheckpointError as e:
        raise mt.CheckpointError(f"checkpoint '{args.checkpoint}' does not load: {e}") from None
    vocab = ck["vocab"]
    if not args.prime:
        raise DataError("--prime is empty (give at least one character)")
    try:
        prime = vocab.encode(args.prime)
    except DataError as e:
        raise DataError(f"--prime has {e} (use characters of the training text)") from None
    try:
        out = model.generate(prime, args.length, args.temperature,
                             np.random.default_rng(args.seed))
    except ValueError as e:                 # weights that overflow to inf or NaN
        raise mt.CheckpointError(f"checkpoint '{args.checkpoint}' cannot generate: "
                                 f"{e}") from None
    print(args.prime + vocab.decode(out))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (DataError, mt.CheckpointError) as e:
        print("error: " + " ".join(str(e).split()), file=sys.stderr)
        sys.exit(2)
