"""In-process fixed-window counting: windows, several limits, retry-after, bounded memory."""

from __future__ import annotations

import threading

import pytest

from app.stores.rate_limits import MEMORY_STORAGE, MemoryRateLimiter, rate_limiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("limit", "steps", "expected"),
    [
        # steps: (seconds to advance before the hit, key); expected: hit() answers
        ("2/minute", [(0, "a"), (0, "a"), (0, "a")], [None, None, 60]),
        ("2/minute", [(0, "a"), (0, "a"), (30, "a")], [None, None, 30]),
        ("2/minute", [(0, "a"), (0, "a"), (60, "a")], [None, None, None]),
        ("2/minute", [(0, "a"), (0, "a"), (0, "b")], [None, None, None]),
        ("1/second", [(0, "a"), (0.4, "a"), (0.7, "a")], [None, 1, None]),
        # The window starts at the key's first request, not on a clock boundary.
        ("1/minute", [(59, "a"), (2, "a"), (58.5, "a")], [None, 58, None]),
        # Both limits must allow; the longest wait is the one to report.
        ("2/second;3/minute", [(0, "a"), (0, "a"), (0, "a")], [None, None, 1]),
        (
            "2/second;3/minute",
            [(0, "a"), (0, "a"), (1, "a"), (0, "a"), (1, "a")],
            [None, None, None, 59, 58],
        ),
    ],
    ids=[
        "third-refused",
        "retry-after-shrinks",
        "next-window",
        "keys-apart",
        "sub-second-rounds-up",
        "window-from-first-hit",
        "shorter-limit-refuses",
        "longer-limit-refuses",
    ],
)
def test_fixed_windows(
    limit: str, steps: list[tuple[float, str]], expected: list[int | None]
) -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(limit, clock)
    answers = []
    for advance, key in steps:
        clock.now += advance
        answers.append(limiter.hit(key))
    assert answers == expected


def test_a_refused_request_spends_nothing() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter("1/second;2/minute", clock)
    assert limiter.hit("a") is None
    assert limiter.hit("a") == 1  # refused by the per-second limit ...
    clock.now += 1
    assert limiter.hit("a") is None  # ... so the per-minute one still had room


def test_a_refund_gives_back_no_more_than_the_window_spent() -> None:
    # A request's refund may come after another request began a new window: it must not
    # leave that window with room for more than its limit.
    clock = Clock()
    limiter = MemoryRateLimiter("2/minute", clock)
    assert limiter.hit("a") is None
    clock.now += 60
    assert limiter.hit("a") is None  # a new window
    limiter.refund("a")
    limiter.refund("a")

    assert [limiter.hit("a") for _ in range(3)] == [None, None, 60]


def test_expired_windows_are_swept_so_memory_stays_bounded() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter("5/second", clock)
    for index in range(1000):
        limiter.hit(f"address-{index}")
    assert len(limiter) == 1000
    clock.now += 1.5
    limiter.hit("one-more")
    assert len(limiter) == 1


def test_counting_from_many_threads_loses_no_hit() -> None:
    limiter = MemoryRateLimiter("1000/hour")
    barrier = threading.Barrier(8)
    answers: list[int | None] = []

    def burst() -> None:
        barrier.wait()
        answers.extend(limiter.hit("shared") for _ in range(200))

    threads = [threading.Thread(target=burst) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers.count(None) == 1000
    assert len(answers) == 1600


def test_memory_storage_counts_in_process() -> None:
    assert isinstance(rate_limiter(MEMORY_STORAGE, "1/minute", "x"), MemoryRateLimiter)
