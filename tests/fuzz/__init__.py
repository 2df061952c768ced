"""A differential fuzzer: random programs run in microtensor, in torch and by finite differences.

A program (programs.py) is data: leaves, statements naming a call of vocab.py and their
arguments, and the loss's terms. generate.py and makers.py draw one from a seed, check.py
runs it through run.execute — the one interpreter, for microtensor and for torch — and
compares; minimize.py shrinks a failure and report.py prints it as a script. Two more
modes build on execute: second order (check.second_order: mt.grad(..., create_graph=True)
of the program's loss, then the gradient of those gradients) and the compiled replay
(compiled.py, `--compiled`: the program as a training step, eagerly and through
mt.compile, compared bit for bit).
"""
