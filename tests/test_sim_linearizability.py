"""Unit tests of the linearizability checker on hand-written and generated histories."""

from __future__ import annotations

import random

from hypothesis import event, given, settings
from hypothesis import strategies as st

from simulations.history import History, OpKind, Outcome
from simulations.history import random_linearizable_history as generate_history
from simulations.linearizability import check_history, check_key


def _op(h: History, client, kind, start, end, outcome=Outcome.OK, key="k", value=None,
        expected=None, result=None):
    op = h.invoke(client, kind, key, start, value=value, expected=expected)
    if outcome is not None:
        h.complete(op, outcome, end, result)
    return op


def test_sequential_history_is_linearizable():
    h = History()
    _op(h, 1, OpKind.PUT, 0, 1, value="a")
    _op(h, 1, OpKind.GET, 2, 3, result="a")
    _op(h, 1, OpKind.CAS, 4, 5, expected="a", value="b", result=True)
    _op(h, 1, OpKind.CAS, 6, 7, expected="a", value="c", result=False)
    _op(h, 1, OpKind.GET, 8, 9, result="b")
    assert check_history(h).linearizable is True


def test_read_of_never_written_value_is_not_linearizable():
    h = History()
    _op(h, 1, OpKind.PUT, 0, 1, value="a")
    _op(h, 2, OpKind.GET, 2, 3, result="zzz")
    result = check_history(h)
    assert result.linearizable is False
    assert "NOT linearizable" in result.explain()


def test_stale_read_after_completed_write_is_not_linearizable():
    h = History()
    _op(h, 1, OpKind.PUT, 0, 1, value="a")
    _op(h, 1, OpKind.PUT, 2, 3, value="b")
    _op(h, 2, OpKind.GET, 4, 5, result="a")
    assert check_history(h).linearizable is False


def test_concurrent_write_may_be_seen_or_not():
    h = History()
    _op(h, 1, OpKind.PUT, 0, 1, value="a")
    _op(h, 1, OpKind.PUT, 2, 10, value="b")
    _op(h, 2, OpKind.GET, 3, 4, result="a")
    _op(h, 3, OpKind.GET, 5, 6, result="b")
    assert check_history(h).linearizable is True
    # ...but once seen, the old value may not come back.
    _op(h, 2, OpKind.GET, 7, 8, result="a")
    assert check_history(h).linearizable is False


def test_reads_of_absent_key():
    h = History()
    _op(h, 1, OpKind.GET, 0, 1, result=None)
    _op(h, 1, OpKind.CAS, 2, 3, expected=None, value="x", result=True)
    _op(h, 1, OpKind.GET, 4, 5, result="x")
    assert check_history(h).linearizable is True


def test_unknown_write_may_take_effect_late():
    h = History()
    _op(h, 1, OpKind.PUT, 0, 1, value="a")
    _op(h, 2, OpKind.PUT, 2, 3, value="b", outcome=Outcome.UNKNOWN)
    _op(h, 3, OpKind.GET, 10, 11, result="a")
    _op(h, 3, OpKind.GET, 20, 21, result="b")  # took effect between 11 and 20
    assert check_history(h).linearizable is True


def test_unknown_write_may_never_happen():
    h = History()
    _op(h, 1, OpKind.PUT, 0, 1, value="a")
    _op(h, 2, OpKind.PUT, 2, 3, value="b", outcome=Outcome.UNKNOWN)
    _op(h, 3, OpKind.GET, 10, 11, result="a")
    assert check_history(h).linearizable is True


def test_unknown_write_cannot_take_effect_before_its_invocation():
    h = History()
    _op(h, 1, OpKind.PUT, 0, 1, value="a")
    _op(h, 3, OpKind.GET, 2, 3, result="b")
    _op(h, 2, OpKind.PUT, 5, 6, value="b", outcome=Outcome.UNKNOWN)
    assert check_history(h).linearizable is False


def test_unknown_write_happens_at_most_once():
    h = History()
    _op(h, 1, OpKind.PUT, 0, 1, value="a")
    _op(h, 2, OpKind.PUT, 2, 3, value="b", outcome=Outcome.UNKNOWN)
    _op(h, 3, OpKind.GET, 4, 5, result="b")
    _op(h, 1, OpKind.PUT, 6, 7, value="c")
    _op(h, 3, OpKind.GET, 8, 9, result="b")
    assert check_history(h).linearizable is False


def test_open_operations_count_as_unknown():
    h = History()
    _op(h, 1, OpKind.PUT, 0, 1, value="a")
    _op(h, 2, OpKind.PUT, 2, None, value="b", outcome=None)
    _op(h, 3, OpKind.GET, 5, 6, result="b")
    assert check_history(h).linearizable is True


def test_failed_operations_never_take_effect():
    h = History()
    _op(h, 1, OpKind.PUT, 0, 1, value="a")
    _op(h, 2, OpKind.PUT, 2, 3, value="b", outcome=Outcome.FAIL)
    _op(h, 3, OpKind.GET, 5, 6, result="b")
    assert check_history(h).linearizable is False


def test_unknown_cas_takes_effect_only_if_compare_holds():
    h = History()
    _op(h, 1, OpKind.PUT, 0, 1, value="a")
    _op(h, 2, OpKind.CAS, 2, 3, expected="zzz", value="b", outcome=Outcome.UNKNOWN)
    _op(h, 3, OpKind.GET, 5, 6, result="b")
    assert check_history(h).linearizable is False


def test_keys_are_checked_independently():
    h = History()
    _op(h, 1, OpKind.PUT, 0, 1, key="x", value="a")
    _op(h, 1, OpKind.PUT, 0, 1, key="y", value="b")
    _op(h, 2, OpKind.GET, 2, 3, key="x", result="a")
    _op(h, 2, OpKind.GET, 2, 3, key="y", result="a")
    result = check_history(h)
    assert result.linearizable is False
    assert [k.key for k in result.failures] == ["y"]


def test_generated_linearizable_histories_pass():
    for seed in range(20):
        h = generate_history(seed, 300)
        assert check_history(h).linearizable is True, seed


def test_corrupted_generated_history_fails():
    caught = 0
    for seed in range(20):
        h = generate_history(seed, 300, unknown_rate=0.0)
        gets = [op for op in h if op.kind is OpKind.GET and op.result is not None]
        victim = random.Random(seed).choice(gets)
        victim.result = "never-written"
        caught += check_history(h).linearizable is False
    assert caught == 20


def test_ten_thousand_operations():
    # Behaviour only; the timing lives in benchmarks/bench_sim.py.
    h = generate_history(7, 10_000, keys=8, clients=10)
    result = check_history(h)
    assert result.linearizable is True
    assert sum(k.operations for k in result.keys) > 9_000


def test_budget_exhaustion_is_inconclusive():
    h = generate_history(3, 200, keys=1)
    h.ops[-1].result = "never-written" if h.ops[-1].kind is OpKind.GET else h.ops[-1].result
    ops = [op for op in h if op.key == "k0"]
    assert check_key("k0", ops, budget=3).linearizable is None


def test_unobserved_unknown_write_can_explain_a_failed_cas():
    # x is never read nor compared against, yet only it explains why the CAS failed.
    def history(with_unknown):
        h = History()
        _op(h, 1, OpKind.PUT, 0, 1, value="a")
        if with_unknown:
            _op(h, 2, OpKind.PUT, 2, 3, value="x", outcome=Outcome.UNKNOWN)
        _op(h, 1, OpKind.CAS, 4, 5, expected="a", value="b", result=False)
        _op(h, 1, OpKind.PUT, 6, 7, value="c")
        _op(h, 3, OpKind.GET, 8, 9, result="c")
        return h

    assert check_history(history(True)).linearizable is True
    assert check_history(history(False)).linearizable is False


def test_interchangeable_unknown_writes_used_at_most_once_each():
    # Two unknown puts of the same value: the search tries only the earlier of the
    # pair at a time, yet both may take effect (the value returns after "c").
    def history(unknown_puts):
        h = History()
        _op(h, 1, OpKind.PUT, 0, 1, value="a")
        for client in range(unknown_puts):
            _op(h, 2 + client, OpKind.PUT, 2, 3, value="b", outcome=Outcome.UNKNOWN)
        _op(h, 9, OpKind.GET, 4, 5, result="b")
        _op(h, 1, OpKind.PUT, 6, 7, value="c")
        _op(h, 9, OpKind.GET, 8, 9, result="b")
        return h

    assert check_history(history(2)).linearizable is True
    assert check_history(history(1)).linearizable is False


def test_unknown_write_of_another_effect_is_not_held_back_by_an_earlier_one():
    # The unknown CAS can never take effect; the later unknown put still can.
    h = History()
    _op(h, 1, OpKind.PUT, 0, 1, value="a")
    _op(h, 2, OpKind.CAS, 2, 3, expected="z", value="b", outcome=Outcome.UNKNOWN)
    _op(h, 3, OpKind.PUT, 4, 5, value="c", outcome=Outcome.UNKNOWN)
    _op(h, 4, OpKind.GET, 10, 11, result="c")
    assert check_history(h).linearizable is True


# -- differential test against an exhaustive search ----------------------------------

def _brute_force_linearizable(ops) -> bool:
    """Every subset of the unknown writes, every order respecting real time."""
    definite = [op for op in ops if op.outcome is Outcome.OK]
    unknown = [op for op in ops if op.outcome is Outcome.UNKNOWN and op.kind is not OpKind.GET]

    def precedes(a, b):  # a must come before b
        return a.outcome is Outcome.OK and a.complete_time < b.invoke_time

    def legal(order):
        value = None
        for op in order:
            if op.kind is OpKind.PUT:
                value = op.value
            elif op.kind is OpKind.GET:
                if op.result != value:
                    return False
            elif op.outcome is Outcome.OK and not op.result:
                if value == op.expected:
                    return False
            else:  # a swapping CAS: OK and swapped, or unknown and taking effect
                if value != op.expected:
                    return False
                value = op.value
        return True

    def orders(todo, done):
        if not todo:
            yield done
            return
        for op in todo:
            if not any(precedes(other, op) for other in todo if other is not op):
                rest = [o for o in todo if o is not op]
                yield from orders(rest, done + [op])

    for mask in range(1 << len(unknown)):
        chosen = definite + [u for bit, u in enumerate(unknown) if mask >> bit & 1]
        if any(legal(order) for order in orders(chosen, [])):
            return True
    return False


_values = st.sampled_from(["a", "b", "c", None])


@st.composite
def _small_histories(draw):
    drawn = []
    for client in range(draw(st.integers(1, 7))):
        kind = draw(st.sampled_from(list(OpKind)))
        start = draw(st.integers(0, 8))
        end = start + draw(st.integers(0, 4))
        outcome = draw(st.sampled_from([Outcome.OK, Outcome.OK, Outcome.UNKNOWN, Outcome.UNKNOWN,
                                         Outcome.FAIL]))
        value = draw(st.sampled_from(["a", "b", "c"]))
        expected = draw(_values)
        result = draw(_values) if kind is OpKind.GET else draw(st.booleans())
        drawn.append((start, client, kind, end, outcome, value, expected, result))
    h = History()  # operations are numbered in invocation order
    for start, client, kind, end, outcome, value, expected, result in sorted(drawn, key=lambda d: d[:2]):
        _op(h, client, kind, start, end, outcome=outcome, value=value, expected=expected,
            result=result)
    return h


@settings(max_examples=400, deadline=None)
@given(_small_histories())
def test_search_agrees_with_exhaustive_check(history):
    expected = _brute_force_linearizable(list(history))
    event(f"linearizable: {expected}")
    assert check_history(history).linearizable is expected
