"""Each emitter mirrors one op's code; the fingerprints it is pinned to are today's."""
from microtensor.compiler import emit


def test_every_emitter_is_pinned_to_the_code_it_mirrors():
    stale = sorted(k for k, v in emit.current_fingerprints().items() if emit.PINNED[k] != v)
    assert not stale, (f"these ops' code changed: check each emitter against it, then update "
                       f"emit.PINNED: {stale}")
