"""Generate text from a model saved by char_rnn.py.

    python examples/sample.py --checkpoint runs/char_rnn-<time>/checkpoint.npz --prime "def "

Prints the prime followed by --length generated characters. A bad checkpoint, or a prime
with characters the model never saw, exits with status 2 and a one-line "error: …".
"""
import argparse
import sys

import numpy as np

import microtensor as mt
from models.charlm import CharLM, DataError, load_checkpoint


class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"error: {message} (see --help)\n")


def positive(kind):
    def parse(s):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {s!r}") from None
        if not v > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {s}")
        return v
    return parse


def main(argv=None):
    p = Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, metavar="PATH",
                   help="checkpoint.npz written by examples/char_rnn.py")
    p.add_argument("--length", type=positive(int), default=500, metavar="N",
                   help="characters to generate (default 500)")
    p.add_argument("--prime", default="\n", help="text to start from; the model reads it "
                   "first, then continues it (default: a newline)")
    p.add_argument("--temperature", type=positive(float), default=0.8,
                   help="sampling temperature: lower is more conservative (default 0.8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling (default 0)")
    args = p.parse_args(argv)

    ck = load_checkpoint(args.checkpoint)
    model = CharLM(**ck["model_config"])
    model.load_state_dict(ck["model"])
    vocab = ck["vocab"]
    if not args.prime:
        raise DataError("--prime is empty (give at least one character)")
    try:
        prime = vocab.encode(args.prime)
    except DataError as e:
        raise DataError(f"--prime has {e} (use characters of the training text)") from None
    out = model.generate(prime, args.length, args.temperature, np.random.default_rng(args.seed))
    print(args.prime + vocab.decode(out))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (DataError, mt.CheckpointError) as e:
        print("error: " + " ".join(str(e).split()), file=sys.stderr)
        sys.exit(2)
