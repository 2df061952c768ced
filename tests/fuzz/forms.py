"""Random shapes, axis arguments and index expressions of every form, for the program generator."""
import numpy as np

MAX_SIZE = 48            # elements per value (the big-linear pattern excepted)
BIG_ROWS = (4096, 4100, 5000)     # rows of the big linear call: FOLD_ROWS = 4096 and past it

INDEX_FORMS_0D = ("empty", "none", "ellipsis", "none_none", "ellipsis_none")
INDEX_FORMS = ("int", "slice", "negative_step", "none", "ellipsis", "ellipsis_int",
               "ellipsis_none", "list", "tuple_in_tuple", "array", "array_2d", "mask",
               "mask_lead", "ellipsis_list", "tuple_then_slice", "slice_list", "int_slice",
               "none_ellipsis_int", "empty")


def leaf_shapes(rng, count):
    """Shapes for `count` leaves: most are broadcast variants of one base shape (leading axes
    dropped, sides set to 1), the rest fresh; 0-d and size-1 axes are common."""
    base = random_shape(rng, min_dims=1)
    shapes = []
    for _ in range(count):
        u = rng.random()
        if u < 0.6:
            shapes.append(broadcast_variant(rng, base))
        elif u < 0.75:
            shapes.append(())
        else:
            shapes.append(random_shape(rng))
    return shapes


def random_shape(rng, min_dims=0, max_dims=3):
    nd = int(rng.integers(min_dims, max_dims + 1))
    return tuple(int(rng.choice([1, 2, 3, 4], p=[0.3, 0.3, 0.25, 0.15])) for _ in range(nd))


def broadcast_variant(rng, shape):
    """A shape that broadcasts against `shape`: some leading axes dropped, some sides 1."""
    lead = int(rng.integers(0, len(shape) + 1)) if rng.random() < 0.5 else 0
    return tuple(1 if rng.random() < 0.3 else s for s in shape[lead:])


def axis_arg(rng, ndim):
    """None, an int (maybe negative) or a tuple of distinct axes in any order and sign."""
    if ndim == 0:
        return None
    u = rng.random()
    if u < 0.25:
        return None
    if u < 0.6:
        a = int(rng.integers(0, ndim))
        return a - ndim if rng.random() < 0.5 else a
    k = int(rng.integers(1, ndim + 1))
    axes = rng.permutation(ndim)[:k]
    return tuple(int(a) - ndim if rng.random() < 0.4 else int(a) for a in axes)


def one_axis(rng, ndim, extra=0):
    """One axis of ndim (+extra for one being inserted), negative half the time."""
    a = int(rng.integers(0, ndim + extra))
    return a - ndim - extra if rng.random() < 0.5 else a


def reshape_targets(shape):
    n = int(np.prod(shape))
    divs = [d for d in range(1, n + 1) if n % d == 0]
    out = [(n,), (-1,), tuple(reversed(shape)), (1, n), tuple(shape) + (1,)]
    out += [(d, n // d) for d in divs] + [(d, -1, 1) for d in divs]
    if n == 1:
        out.append(())
    return [t for t in out if t != tuple(shape)] or [(n,)]


def broadcast_target(rng, shape, max_size):
    """A larger shape `shape` broadcasts to: size-1 sides stretched, new leading axes."""
    for _ in range(10):
        lead = tuple(int(rng.integers(1, 4)) for _ in range(int(rng.integers(0, 3))))
        body = tuple(int(rng.integers(2, 4)) if s == 1 and rng.random() < 0.6 else s
                     for s in shape)
        target = lead + body
        if np.prod(target) <= max_size and target != tuple(shape):
            return target
    return (2,) + tuple(shape)


def _ints_with_repeat(rng, n, k=None):
    """Python ints in [−n, n) with the first repeated at the end (gradients must add up)."""
    k = k or int(rng.integers(1, 4))
    v = [int(i) for i in rng.integers(-n, n, k)]
    return v + v[:1]


def _slice(rng, n, negative=False):
    while True:
        step = rng.choice([-1, -2]) if negative else rng.choice([None, 1, 2, -1, -2, None])
        start = None if rng.random() < 0.4 else int(rng.integers(-n, n))
        stop = None if rng.random() < 0.4 else int(rng.integers(-n - 1, n + 1))
        s = slice(start, stop, None if step is None else int(step))
        if len(range(n)[s]) > 0:
            return s


def _mask(rng, shape):
    m = rng.random(shape) < 0.5
    m.flat[int(rng.integers(0, m.size))] = True
    return m


def index_expr(rng, shape, form=None):
    """(form, index) for a tensor of this shape; the result is never empty."""
    nd = len(shape)
    if nd == 0:
        form = form or str(rng.choice(INDEX_FORMS_0D))
        return form, {"empty": (), "none": None, "ellipsis": Ellipsis,
                      "none_none": (None, None), "ellipsis_none": (Ellipsis, None)}[form]
    forms = [f for f in INDEX_FORMS
             if nd >= 2 or f not in ("tuple_then_slice", "slice_list", "int_slice")]
    form = form or str(rng.choice(forms))
    n, last = shape[0], shape[-1]
    if form == "int":
        return form, int(rng.integers(-n, n))
    if form == "slice":
        return form, _slice(rng, n)
    if form == "negative_step":
        return form, (_slice(rng, n, negative=True),) + ((slice(None),) if nd > 1 else ())
    if form == "none":
        return form, None if rng.random() < 0.5 else (slice(None), None)
    if form == "ellipsis":
        return form, Ellipsis
    if form == "ellipsis_int":
        return form, (Ellipsis, int(rng.integers(-last, last)))
    if form == "ellipsis_none":
        return form, (Ellipsis, None)
    if form == "list":
        return form, _ints_with_repeat(rng, n)
    if form == "tuple_in_tuple":
        return form, (tuple(_ints_with_repeat(rng, n)),)
    if form == "array":
        return form, np.array(_ints_with_repeat(rng, n))
    if form == "array_2d":
        v = _ints_with_repeat(rng, n, k=3)
        return form, np.array(v).reshape(2, 2)
    if form == "mask":
        return form, _mask(rng, shape)
    if form == "mask_lead":
        return form, _mask(rng, (n,))
    if form == "ellipsis_list":
        return form, (Ellipsis, _ints_with_repeat(rng, last))
    if form == "tuple_then_slice":
        return form, (tuple(_ints_with_repeat(rng, n)), _slice(rng, shape[1]))
    if form == "slice_list":
        return form, (_slice(rng, n), _ints_with_repeat(rng, shape[1]))
    if form == "int_slice":
        return form, (int(rng.integers(-n, n)), _slice(rng, shape[1], negative=True))
    if form == "none_ellipsis_int":
        return form, (None, Ellipsis, int(rng.integers(-last, last)))
    if form == "empty":
        return form, ()
    raise ValueError(form)
