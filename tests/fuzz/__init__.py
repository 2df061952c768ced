"""A differential fuzzer: random programs run in microtensor, in torch and by finite differences."""
