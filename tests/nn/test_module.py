"""Parameter and Module: registration, traversal, train/eval, repr, state dicts, containers."""
from collections import OrderedDict

import numpy as np
import pytest

import microtensor as mt
from microtensor.errors import CheckpointError, DTypeError
from microtensor.nn import Linear, Module, ModuleDict, ModuleList, Parameter, Sequential, Tanh


class Cell(Module):
    def __init__(self, n):
        super().__init__()
        self.Wxh = Parameter(np.full((n, n), 1.0))
        self.Whh = Parameter(np.full((n, n), 2.0))
        self.scale = 3.0                      # a plain attribute, not registered

    def forward(self, x, h):
        return (x @ self.Wxh.T + h @ self.Whh.T).tanh()


class Encoder(Module):
    def __init__(self, n):
        super().__init__()
        self.embed = Parameter(np.zeros((5, n)))
        self.cell = Cell(n)


class Seq2Seq(Module):
    def __init__(self, n=2):
        super().__init__()
        self.encoder = Encoder(n)
        self.decoder = Cell(n)
        self.head = Linear(n, 3)


# ---- Parameter ------------------------------------------------------------------------------
def test_parameter_copies_data_requires_grad_and_is_float():
    a = np.array([1.0, 2.0])
    p = Parameter(a)
    a[0] = 9.0
    assert isinstance(p, mt.Tensor) and p.requires_grad and p.is_leaf
    np.testing.assert_array_equal(p.data, [1.0, 2.0])
    assert Parameter([1, 2]).dtype == np.float64
    assert Parameter(mt.tensor([1.0], dtype=np.float32)).dtype == np.float32
    assert not Parameter([1.0], requires_grad=False).requires_grad
    assert not hasattr(p, "__dict__")           # __slots__ kept


def test_parameter_repr_and_ops_give_plain_tensors():
    p = Parameter([0.0, 0.0])
    assert repr(p) == ("Parameter containing:\n"
                       "tensor([0., 0.], dtype=float64, requires_grad=True)")
    y = p * 2
    assert type(y) is mt.Tensor
    (y.sum()).backward()
    np.testing.assert_array_equal(p.grad, [2.0, 2.0])


# ---- registration and traversal ----------------------------------------------------------------
def test_named_parameters_dotted_in_registration_order():
    m = Seq2Seq()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["encoder.embed", "encoder.cell.Wxh", "encoder.cell.Whh",
                     "decoder.Wxh", "decoder.Whh", "head.weight", "head.bias"]
    assert [p for p in m.parameters()][1] is m.encoder.cell.Wxh
    assert [n for n, _ in m.encoder.named_parameters(prefix="enc")] == [
        "enc.embed", "enc.cell.Wxh", "enc.cell.Whh"]
    assert [n for n, _ in m.named_parameters(recurse=False)] == []
    assert m.encoder.cell.scale == 3.0
    assert "scale" not in m.encoder.cell._parameters


def test_assigned_parameter_gets_attribute_name_unless_named():
    m = Cell(2)
    assert m.Wxh.name == "Wxh"
    p = Parameter([1.0])
    p.name = "mine"
    m.extra = p
    assert m.extra.name == "mine"


def test_children_and_modules():
    m = Seq2Seq()
    assert [n for n, _ in m.named_children()] == ["encoder", "decoder", "head"]
    assert list(m.children()) == [m.encoder, m.decoder, m.head]
    assert [n for n, _ in m.named_modules()] == ["", "encoder", "encoder.cell", "decoder", "head"]
    assert list(m.modules())[2] is m.encoder.cell


def test_shared_parameter_and_module_are_counted_once():
    m = Seq2Seq()
    m.decoder.Wxh = m.encoder.cell.Wxh           # tied weight
    m.again = m.head                             # the same module twice
    names = [n for n, _ in m.named_parameters()]
    assert names == ["encoder.embed", "encoder.cell.Wxh", "encoder.cell.Whh",
                     "decoder.Whh", "head.weight", "head.bias"]
    assert len(list(m.parameters())) == 6
    assert [n for n, _ in m.named_modules()] == ["", "encoder", "encoder.cell", "decoder", "head"]
    assert len(list(m.children())) == 3
    # as in torch, the state dict holds a tied tensor under each of its names
    sd = m.state_dict()
    assert "decoder.Wxh" in sd and "again.weight" in sd


def test_reassign_and_delete_update_the_registry():
    m = Cell(2)
    m.Whh = None
    assert [n for n, _ in m.named_parameters()] == ["Wxh"]
    with pytest.raises(TypeError, match="parameter 'Wxh'"):
        m.Wxh = mt.tensor([1.0])
    m.Wxh = Linear(1, 1)                         # a module can replace a parameter
    assert [n for n, _ in m.named_parameters()] == ["Wxh.weight", "Wxh.bias"]
    del m.Wxh
    assert list(m.parameters()) == [] and not hasattr(m, "Wxh")


def test_assigning_before_super_init_is_a_clear_error():
    class Bad(Module):
        def __init__(self):
            self.w = Parameter([1.0])

    with pytest.raises(AttributeError, match=r"before Bad.__init__\(\) calls super"):
        Bad()


def test_forward_not_defined():
    with pytest.raises(NotImplementedError, match="Module defines no forward"):
        Module()(1)


def test_call_runs_forward():
    m = Cell(2)
    x, h = mt.ones(1, 2), mt.zeros(1, 2)
    np.testing.assert_array_equal(m(x, h).data, np.tanh(np.full((1, 2), 2.0)))


def test_train_eval_recursive():
    m = Seq2Seq()
    assert all(x.training for x in m.modules())
    assert m.eval() is m
    assert not any(x.training for x in m.modules())
    m.train()
    assert all(x.training for x in m.modules())
    with pytest.raises(ValueError, match="mode must be a bool"):
        m.train("no")


def test_zero_grad_sets_none():
    m = Seq2Seq()
    loss = m.head(m.decoder(mt.ones(1, 2), mt.ones(1, 2))).sum()
    loss.backward()
    assert m.head.weight.grad is not None and m.decoder.Whh.grad is not None
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_apply_visits_children_first():
    seen = []
    Seq2Seq().apply(lambda mod: seen.append(type(mod).__name__))
    assert seen == ["Cell", "Encoder", "Cell", "Linear", "Seq2Seq"]


def test_buffers_are_state_but_not_parameters():
    m = Cell(2)
    m.register_buffer("count", np.array([0, 0]))
    assert isinstance(m.count, mt.Tensor) and not m.count.requires_grad
    assert [n for n, _ in m.named_buffers()] == ["count"]
    assert list(m.state_dict()) == ["Wxh", "Whh", "count"]
    m.count = np.array([4, 5])
    np.testing.assert_array_equal(m.state_dict()["count"], [4, 5])
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("scale", np.zeros(1))


def test_to_casts_in_place_keeping_identity():
    m = Seq2Seq()
    w = m.head.weight
    m.head(mt.ones(1, 2)).sum().backward()
    assert m.to(mt.float32) is m
    assert m.head.weight is w and w.dtype == np.float32 and w.grad.dtype == np.float32
    assert all(p.dtype == np.float32 for p in m.parameters())
    assert m.head(mt.ones(1, 2, dtype=np.float32)).dtype == np.float32
    with pytest.raises(DTypeError, match="floating-point"):
        m.to(np.int64)


# ---- repr ------------------------------------------------------------------------------------
def test_repr_tree():
    m = Sequential(Linear(2, 3), Tanh(),
                   ModuleList([Linear(3, 3), Linear(3, 3), Tanh()]),
                   ModuleDict({"a": Tanh()}), Sequential(), Linear(3, 1, bias=False))
    assert repr(m) == """Sequential(
  (0): Linear(in_features=2, out_features=3, bias=True)
  (1): Tanh()
  (2): ModuleList(
    (0-1): 2 x Linear(in_features=3, out_features=3, bias=True)
    (2): Tanh()
  )
  (3): ModuleDict(
    (a): Tanh()
  )
  (4): Sequential()
  (5): Linear(in_features=3, out_features=1, bias=False)
)"""
    assert repr(ModuleList()) == "ModuleList()"


def test_repr_with_extra_and_children():
    class Net(Module):
        def __init__(self):
            super().__init__()
            self.fc = Linear(1, 1)

        def extra_repr(self):
            return "hidden=4\nlayers=1"

    assert repr(Net()) == ("Net(\n  hidden=4\n  layers=1\n"
                           "  (fc): Linear(in_features=1, out_features=1, bias=True)\n)")


def test_repr_matches_torch():
    torch = pytest.importorskip("torch")
    tn = torch.nn
    ours = Sequential(Linear(2, 3), Tanh(), ModuleList([Linear(3, 3)] * 3 + [Tanh()]),
                      ModuleDict({"x": Sequential(Tanh(), Linear(3, 2))}), mt.nn.ReLU(),
                      mt.nn.Sigmoid(), mt.nn.Embedding(4, 5))
    theirs = tn.Sequential(tn.Linear(2, 3), tn.Tanh(),
                           tn.ModuleList([tn.Linear(3, 3)] * 3 + [tn.Tanh()]),
                           tn.ModuleDict({"x": tn.Sequential(tn.Tanh(), tn.Linear(3, 2))}),
                           tn.ReLU(), tn.Sigmoid(), tn.Embedding(4, 5))
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]


# ---- state dicts ----------------------------------------------------------------------------
def test_state_dict_is_ordered_copies():
    m = Seq2Seq()
    sd = m.state_dict()
    assert isinstance(sd, OrderedDict)
    assert list(sd) == [n for n, _ in m.named_parameters()]
    sd["head.weight"][...] = 7.0
    assert not np.any(m.head.weight.data == 7.0)
    np.testing.assert_array_equal(sd["decoder.Whh"], np.full((2, 2), 2.0))


def test_load_state_dict_round_trip_in_place():
    a, b = Seq2Seq(), Seq2Seq()
    w = b.head.weight
    result = b.load_state_dict(a.state_dict())
    assert result == ([], []) and result.missing_keys == []
    assert b.head.weight is w
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=n)
    sd = a.state_dict()
    sd["head.bias"][...] = 5.0                   # the loaded arrays are copies, not aliases
    assert not np.any(b.head.bias.data == 5.0)


def test_load_state_dict_accepts_tensors_and_casts_float_widths():
    m = Linear(2, 2)
    m.load_state_dict({"weight": mt.ones(2, 2), "bias": np.zeros(2, dtype=np.float32)})
    np.testing.assert_array_equal(m.weight.data, np.ones((2, 2)))
    assert m.bias.dtype == np.float64


def test_load_state_dict_one_wrong_shape_changes_nothing():
    m = Seq2Seq()
    before = m.state_dict()
    sd = {k: v + 1.0 for k, v in before.items()}
    sd["decoder.Whh"] = np.zeros((3, 2))
    with pytest.raises(CheckpointError) as err:
        m.load_state_dict(sd)
    msg = str(err.value)
    assert "decoder.Whh: shape (3, 2) in the state dict, (2, 2) in the model" in msg
    assert "left unchanged" in msg
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


def test_load_state_dict_lists_every_problem():
    m = Seq2Seq()
    sd = m.state_dict()
    del sd["encoder.embed"], sd["head.bias"]
    sd["decoder.Wxh"] = np.zeros((1,))
    sd["head.weight"] = np.array([["a"] * 2] * 3)
    sd["extra.w"] = np.zeros(1)
    sd["typo"] = np.zeros(1)
    before = m.state_dict()
    with pytest.raises(CheckpointError) as err:
        m.load_state_dict(sd)
    msg = str(err.value)
    assert "missing: encoder.embed, head.bias" in msg
    assert "unexpected: extra.w, typo" in msg
    assert "decoder.Wxh: shape (1,) in the state dict, (2, 2) in the model" in msg
    assert "head.weight: dtype <U1 in the state dict, float64 in the model" in msg
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_load_state_dict_integer_into_float_ok_float_into_integer_buffer_not():
    m = Linear(1, 1)
    m.register_buffer("steps", np.array(0))
    m.load_state_dict({"weight": np.array([[2]]), "bias": np.array([1]), "steps": np.array(3)})
    assert m.weight.data[0, 0] == 2.0 and m.steps.data == 3
    with pytest.raises(CheckpointError, match="steps: dtype float64 in the state dict, int64"):
        m.load_state_dict({"weight": np.ones((1, 1)), "bias": np.ones(1),
                           "steps": np.array(1.5)})


def test_load_state_dict_non_strict_returns_missing_and_unexpected():
    m = Seq2Seq()
    sd = m.state_dict()
    sd.pop("head.bias")
    sd["decoder.Wxh"] = np.full((2, 2), 4.0)
    sd["bogus"] = np.zeros(1)
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert missing == ["head.bias"] and unexpected == ["bogus"]
    np.testing.assert_array_equal(m.decoder.Wxh.data, np.full((2, 2), 4.0))
    sd["decoder.Wxh"] = np.zeros(3)                 # shapes are checked even when not strict
    with pytest.raises(CheckpointError, match="decoder.Wxh: shape"):
        m.load_state_dict(sd, strict=False)


# ---- containers -----------------------------------------------------------------------------
def test_module_list_behaves_like_a_list():
    a, b, c = Linear(1, 1), Linear(1, 2), Tanh()
    ml = ModuleList([a, b])
    ml.append(c)
    assert len(ml) == 3 and list(ml) == [a, b, c] and ml[-1] is c
    assert [n for n, _ in ml.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert list(ml[1:]) == [b, c] and isinstance(ml[1:], ModuleList)
    ml.insert(0, c)
    assert list(ml) == [c, a, b, c]
    del ml[0]
    assert list(ml) == [a, b, c] and list(ml._modules) == ["0", "1", "2"]
    ml[2] = Linear(2, 2)
    assert [n for n, _ in ml.named_parameters()][-1] == "2.bias"
    with pytest.raises(IndexError, match="out of range for a ModuleList of length 3"):
        ml[3]
    with pytest.raises(TypeError, match="not a Module"):
        ml.append(3)


def test_module_dict_behaves_like_a_dict():
    md = ModuleDict({"enc": Linear(1, 1)})
    md["dec"] = Linear(1, 1)
    assert list(md) == ["enc", "dec"] and "dec" in md and len(md) == 2
    assert [n for n, _ in md.named_parameters()] == ["enc.weight", "enc.bias",
                                                     "dec.weight", "dec.bias"]
    assert md.pop("enc") is not None and list(md.keys()) == ["dec"]
    with pytest.raises(KeyError, match="already exists"):
        md["keys"] = Tanh()
    with pytest.raises(KeyError, match="contain no '.'"):
        md["a.b"] = Tanh()
    md.clear()
    assert len(md) == 0 and list(md.parameters()) == []


def test_sequential_indexing_and_forward():
    s = Sequential(Linear(2, 3), Tanh(), Linear(3, 1))
    assert len(s) == 3 and isinstance(s[1], Tanh) and s[-1] is s[2]
    head = s[:2]
    assert isinstance(head, Sequential) and len(head) == 2 and head[0] is s[0]
    x = np.array([[0.5, -1.0]])
    expected = np.tanh(x @ s[0].weight.data.T + s[0].bias.data) @ s[2].weight.data.T \
        + s[2].bias.data
    np.testing.assert_allclose(s(x).data, expected, rtol=1e-15)
    named = Sequential(OrderedDict([("fc", Linear(1, 1)), ("act", Tanh())]))
    assert [n for n, _ in named.named_children()] == ["fc", "act"]
    with pytest.raises(IndexError):
        s[3]
