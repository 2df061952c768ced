"""Each emitter mirrors one op's code; the fingerprints it is pinned to are today's."""
from microtensor.compiler import emit


def test_every_emitter_is_pinned_to_the_code_it_mirrors():
    stale = sorted(k for k, v in emit.current_fingerprints().items() if emit.PINNED[k] != v)
    assert not stale, (f"these ops' code changed: check each emitter against it, then update "
                       f"emit.PINNED: {stale}")


def test_concat_backward_slices_are_np_splits_views():
    """The concat emitter slices g where the op calls np.split: the same views (offset, shape,
    strides), so everything downstream reads the same memory the same way."""
    import numpy as np
    rng = np.random.default_rng(0)
    for shape, axis, offsets in [((4, 9), 1, [3, 5]), ((6, 2, 5), 0, [1]), ((3, 7), -1, [2, 6]),
                                 ((2, 3, 8), 2, [4])]:
        g = rng.standard_normal(shape)
        bounds = [None] + offsets + [None]
        lead = (slice(None),) * (axis % g.ndim)
        for i, want in enumerate(np.split(g, offsets, axis=axis)):
            got = g[lead + (slice(bounds[i], bounds[i + 1]),)]
            assert got.shape == want.shape and got.strides == want.strides
            assert got.__array_interface__["data"] == want.__array_interface__["data"]
