"""The LLM token and money budget (evolve/search/llm/budget.py)."""

import math

from hypothesis import given
from hypothesis import strategies as st

from evolve.search.llm.budget import Limits, Spent, estimate_tokens, worst_tokens
from evolve.search.llm.chat import Reply


def _limits(tokens=None, cost=None, max_tokens=100) -> Limits:
    return Limits(tokens, cost, price_in=1.5, price_out=6.0, max_tokens=max_tokens)


@given(st.text())
def test_the_worst_case_bounds_the_estimate(text):
    assert worst_tokens(text) == len(text.encode()) >= estimate_tokens(text) >= 0
    assert estimate_tokens(text) * 4 >= len(text.encode())


def test_a_requests_worst_case_is_its_prompt_bytes_and_max_tokens_at_the_prices():
    tokens, cost = _limits().worst("héllo")  # 6 bytes
    assert tokens == 106 and cost == (6 * 1.5 + 100 * 6.0) / 1e6


def test_no_cap_leaves_everything():
    assert _limits().left(Spent(10**9, 10**9, 1e9), [(5, 1.0)]) == (math.inf, math.inf)


def test_what_is_left_is_the_cap_less_spent_less_reserved():
    spent = Spent(tokens_in=300, tokens_out=200, cost=0.5)
    assert _limits(2000, 2.0).left(spent, [(400, 0.25), (100, 0.25)]) == (1000, 1.0)


@given(st.lists(st.text(max_size=300), max_size=20), st.integers(0, 5000),
       st.floats(0, 0.05), st.integers(0, 3000), st.floats(0, 0.02))
def test_reserving_what_fits_never_passes_the_caps(prompts, cap_tokens, cap_cost, used, paid):
    """The rule of ``plan``: a request goes out only if its worst case fits what is left
    (less the worst cases already out): then the caps hold whatever the replies cost."""
    limits = _limits(cap_tokens + used, cap_cost + paid)
    spent, reserved = Spent(used, 0, paid), []
    for prompt in prompts:
        tokens, cost = limits.worst(prompt)
        left_tokens, left_cost = limits.left(spent, reserved)
        if tokens <= left_tokens and cost <= left_cost:
            reserved.append((tokens, cost))
    assert used + sum(t for t, _ in reserved) <= limits.tokens
    assert paid + sum(c for _, c in reserved) <= limits.cost + 1e-12


def test_usage_takes_the_servers_counts_else_estimates():
    limits = _limits(max_tokens=256)
    assert limits.usage(Reply("abcdefgh", None, "", 11, 3), "prompt") == (11, 3)
    assert limits.usage(Reply("abcdefgh"), "12345678") == (2, 2)  # bytes / 4
    assert limits.usage(Reply(None, "timeout"), "12345678") == (2, 0)  # reached: prompt read
    assert limits.usage(Reply(None, "too_long"), "1234") == (1, 256)  # cut at max_tokens
    for error in ("network", "http"):  # never reached the model: nothing charged
        assert limits.usage(Reply(None, error), "12345678") == (0, 0)


def test_spent_reads_a_checkpoint_and_charges():
    assert Spent.from_dict({}) == Spent(0, 0, 0.0, None)
    spent = Spent.from_dict({"tokens_in": 5, "tokens_out": 6, "cost": 0.5, "exhausted": 9,
                             "requests": 3})
    spent.charge(1, 2, 0.25)
    assert spent == Spent(6, 8, 0.75, 9)
    assert _limits().price(1_000_000, 2_000_000) == 1.5 + 12.0
