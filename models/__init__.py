"""Models built from microtensor's public API, and the hand-derived references they are checked against."""
from .charlm import CharLM, DataError, Vocab, batches, load_checkpoint, load_corpus, save_checkpoint
from .gru import GRU, GRUCell
from .lstm import LSTM, LSTMCell
from .rnn import VanillaRNN, VanillaRNNCell
