"""A differential fuzzer: random programs run in microtensor, in torch and by finite differences.

A program (programs.py) is data: leaves, statements naming a call of vocab.py and their
arguments, and the loss's terms. generate.py and makers.py draw one from a seed, check.py
runs it through run.execute — the one interpreter, for microtensor and for torch — and
compares; minimize.py shrinks a failure and report.py prints it as a script. Later modes
build on execute: second order (take mt.grad(..., create_graph=True) of the program's loss
and make a new loss from those gradients) and a compiled replay (run the same program
eagerly and compiled, and compare the gradients bit for bit).
"""
