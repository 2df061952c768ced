"""Each emitter mirrors one op's code; the fingerprints it is pinned to are today's."""
from microtensor.compiler import emit


def test_every_emitter_is_pinned_to_the_code_it_mirrors():
    stale = sorted(k for k, v in emit.current_fingerprints().items() if emit.PINNED[k] != v)
    assert not stale, (f"these ops' code changed: check each emitter against it, then update "
                       f"emit.PINNED: {stale}")


def test_concat_backward_slices_are_np_splits_views():
    """The concat emitter slices g where the op calls np.split: run its lines, and each piece
    is the same view (offset, shape, strides) as np.split's, so everything downstream reads
    the same memory the same way."""
    import types

    import numpy as np

    from microtensor.compiler.record import M, Recorder
    from microtensor.compiler.walk import Val
    rng = np.random.default_rng(0)
    for shape, axis, offsets in [((4, 9), 1, [3, 5]), ((6, 2, 5), 0, [1]), ((3, 7), -1, [2, 6]),
                                 ((2, 3, 8), 2, [4])]:
        g = rng.standard_normal(shape)
        want = np.split(g, offsets, axis=axis)
        rec = Recorder([])
        node = types.SimpleNamespace(saved=(axis, np.array(offsets)))
        vals = emit._bw_concat(rec, node, None, Val(g, f"{M}g0{M}"), want)
        ns = {"g0": g}
        exec("\n".join(line.replace(M, "") for line in rec.lines), ns)
        assert len(vals) == len(want)
        for v, w in zip(vals, want):
            got = ns[v.name.replace(M, "")]
            assert got.shape == w.shape and got.strides == w.strides
            assert got.__array_interface__["data"] == w.__array_interface__["data"]

