"""Shared by the compile tests: run a training step eagerly and compiled, side by side."""
import warnings

import numpy as np

import microtensor as mt


def same(a, b):
    """Bitwise equality of two arrays (or tensors): shape, dtype and every byte."""
    a = a.data if isinstance(a, mt.Tensor) else np.asarray(a)
    b = b.data if isinstance(b, mt.Tensor) else np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def flat_tensors(x):
    if isinstance(x, mt.Tensor):
        return [x]
    if isinstance(x, (tuple, list)):
        return [t for e in x for t in flat_tensors(e)]
    if isinstance(x, dict):
        return [t for e in x.values() for t in flat_tensors(e)]
    return []


def run_both(setup, inputs, seed=0, expect_replays=True):
    """setup(seed) -> (step, params); run step eagerly on one copy and compiled on another,
    over the same inputs (a list of argument tuples), and assert that every output, every
    parameter and every gradient is bitwise equal after every call. Returns the Compiled."""
    mt.manual_seed(seed)
    step_e, params_e = setup()
    mt.manual_seed(seed)
    step_c, params_c = setup()
    compiled = mt.compile(step_c)
    rng_e = rng_c = None
    for k, args in enumerate(inputs):
        mt.manual_seed(1000 + k)
        out_e = step_e(*args)
        rng_e = mt.get_rng_state()
        mt.manual_seed(1000 + k)
        with warnings.catch_warnings():
            warnings.simplefilter("error", mt.CompileWarning)
            out_c = compiled(*args)
        rng_c = mt.get_rng_state()
        assert rng_e == rng_c, f"call {k}: the generator moved differently"
        te, tc = flat_tensors(out_e), flat_tensors(out_c)
        assert len(te) == len(tc)
        for a, b in zip(te, tc):
            assert same(a, b), f"call {k}: an output differs"
        for i, (p, q) in enumerate(zip(params_e, params_c)):
            assert same(p, q), f"call {k}: parameter {i} differs"
            assert (p.grad is None) == (q.grad is None), f"call {k}: grad {i} None-ness"
            if p.grad is not None:
                assert same(p.grad, q.grad), f"call {k}: gradient {i} differs"
    if expect_replays:
        assert compiled.counts["replayed"] >= len(inputs) - compiled.counts["traced"]
        assert compiled.counts["replayed"] >= 1, compiled.counts
    return compiled
