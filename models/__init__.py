"""Models built from microtensor's public API, and the hand-derived references they are checked against."""
from .gru import GRU, GRUCell
from .lstm import LSTM, LSTMCell
from .rnn import VanillaRNN, VanillaRNNCell
