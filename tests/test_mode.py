"""Grad mode (no_grad / enable_grad) per thread, task, nested block and generator."""
import threading

import pytest

import microtensor as mt

def test_no_grad_records_nothing_and_enable_grad_inside_it_records_again():
    x = mt.tensor(1.0, requires_grad=True)
    with mt.no_grad():
        assert not mt.is_grad_enabled()
        y = x * 2
        with mt.enable_grad():
            assert mt.is_grad_enabled()
            z = x * 2
        assert not mt.is_grad_enabled()
    assert mt.is_grad_enabled()
    assert not y.requires_grad and y.op is None and y.parents is None
    assert z.requires_grad and z.op.name == "mul"
    assert y.item() == 2.0


def test_no_grad_as_a_decorator_and_restored_after_an_exception():
    x = mt.tensor(1.0, requires_grad=True)

    @mt.no_grad()
    def f(t):
        return t * 3, mt.is_grad_enabled()

    out, enabled = f(x)
    assert not enabled and not out.requires_grad and out.item() == 3.0
    assert mt.is_grad_enabled()
    with pytest.raises(KeyError):
        with mt.no_grad():
            raise KeyError
    assert mt.is_grad_enabled()


def test_grad_mode_is_thread_local():
    x = mt.tensor(1.0, requires_grad=True)
    seen = {}

    def worker():
        seen["enabled"] = mt.is_grad_enabled()
        seen["records"] = (x * 2).requires_grad

    with mt.no_grad():
        th = threading.Thread(target=worker)
        th.start()
        th.join()
        assert not (x * 2).requires_grad
    assert seen == {"enabled": True, "records": True}



def test_grad_mode_belongs_to_each_asyncio_task():
    import asyncio
    x = mt.tensor(1.0, requires_grad=True)

    async def quiet(started, done):
        with mt.no_grad():
            started.set()
            await done.wait()             # the other task runs while this one is in no_grad
            return (x * 2).requires_grad

    async def loud(started, done):
        await started.wait()
        recorded = (x * 2).requires_grad
        done.set()
        return recorded

    async def main():
        started, done = asyncio.Event(), asyncio.Event()
        return await asyncio.gather(quiet(started, done), loud(started, done))

    assert asyncio.run(main()) == [False, True]


def test_one_no_grad_object_entered_twice_restores_grad_mode():
    guard = mt.no_grad()
    with guard:
        with guard:
            assert not mt.is_grad_enabled()
        assert not mt.is_grad_enabled()
    assert mt.is_grad_enabled()


def test_one_no_grad_object_shared_by_two_threads_restores_each_threads_mode():
    guard, barrier, seen = mt.no_grad(), threading.Barrier(2), []

    def worker():
        with guard:
            barrier.wait()              # both threads inside the same guard at once
        barrier.wait()
        seen.append(mt.is_grad_enabled())

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert seen == [True, True] and mt.is_grad_enabled()


def test_no_grad_on_a_generator_function_holds_inside_it_and_not_between_yields():
    x = mt.tensor(1.0, requires_grad=True)

    @mt.no_grad()
    def steps():
        for _ in range(2):
            received = yield (x * 2).requires_grad, mt.is_grad_enabled()
            assert received == "go"
        return "finished"

    gen = steps()
    assert next(gen) == (False, False)
    assert mt.is_grad_enabled() and (x * 2).requires_grad      # outside, between yields
    assert gen.send("go") == (False, False)
    with pytest.raises(StopIteration) as stop:
        gen.send("go")
    assert stop.value.value == "finished" and mt.is_grad_enabled()


def test_an_exception_thrown_into_a_no_grad_generator_is_seen_inside_the_mode():
    @mt.no_grad()
    def catcher():
        try:
            yield 1
        except KeyError:
            yield mt.is_grad_enabled()

    gen = catcher()
    next(gen)
    assert gen.throw(KeyError()) is False
    assert mt.is_grad_enabled()
