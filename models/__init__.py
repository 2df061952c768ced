"""Models built from microtensor's public API, and the hand-derived references they are checked against."""
if __name__ != "microtensor.models":        # one module identity: never both models.X and microtensor.models.X
    raise ImportError(f"import microtensor.models, not {__name__}: the repository's models/ folder is "
                      f"installed as microtensor.models (README, 'Where models live')")
from .charlm import CharLM, DataError, Vocab, batches, load_checkpoint, load_corpus, save_checkpoint
from .gru import GRU, GRUCell
from .lstm import LSTM, LSTMCell
from .rnn import VanillaRNN, VanillaRNNCell
