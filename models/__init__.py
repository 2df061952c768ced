"""Models built from microtensor's public API, and the hand-derived references they are checked against."""
from .rnn import VanillaRNN, VanillaRNNCell
