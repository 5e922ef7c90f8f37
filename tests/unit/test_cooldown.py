"""The shared "hold a failure / rate-limit a refetch" timing (shared/core/cooldown.py)."""

from __future__ import annotations

import threading

import pytest

from shared.core.cooldown import Cooldown, HeldFailure
from shared.core.errors import ConfigurationError, CredentialUnavailable

from .fakes import FakeClock


def test_cooldown_allows_one_attempt_per_interval() -> None:
    clock = FakeClock()
    cooldown = Cooldown(30, clock=clock)
    assert cooldown.ready() and cooldown.remaining() == 0
    assert cooldown.try_start()
    assert not cooldown.try_start() and not cooldown.ready()
    clock.advance(29.5)
    assert not cooldown.try_start() and cooldown.remaining() == pytest.approx(0.5)
    clock.advance(0.5)
    assert cooldown.try_start()


def test_cooldown_start_counts_even_when_not_ready() -> None:
    clock = FakeClock()
    cooldown = Cooldown(10, clock=clock)
    cooldown.start()
    clock.advance(8)
    cooldown.start()  # a forced attempt restarts the interval
    clock.advance(8)
    assert not cooldown.ready()
    clock.advance(2)
    assert cooldown.ready()


def test_try_start_is_atomic_across_threads() -> None:
    cooldown = Cooldown(3600)
    barrier = threading.Barrier(16)
    started: list[bool] = []
    lock = threading.Lock()

    def attempt() -> None:
        barrier.wait()
        result = cooldown.try_start()
        with lock:
            started.append(result)

    threads = [threading.Thread(target=attempt) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(started) == [False] * 15 + [True]


def test_held_failure_reraises_a_copy_with_the_time_left() -> None:
    clock = FakeClock()
    held = HeldFailure(clock=clock)
    held.raise_if_held()  # nothing held: returns
    original = CredentialUnavailable("Entra is down", retry_after=5)
    held.hold(original, 5)
    clock.advance(1.2)
    with pytest.raises(CredentialUnavailable) as caught:
        held.raise_if_held()
    assert caught.value is not original and caught.value.retry_after == 4  # ceil(3.8)
    assert original.retry_after == 5  # the held error itself is untouched
    assert held.remaining() == pytest.approx(3.8)
    clock.advance(3.8)
    held.raise_if_held()
    assert held.held() is None and held.remaining() == 0


def test_held_failure_without_retry_after_stays_without() -> None:
    clock = FakeClock()
    held = HeldFailure(clock=clock)
    held.hold(ConfigurationError("vault entry missing"), 5)
    error = held.held()
    assert isinstance(error, ConfigurationError) and error.retry_after is None
    held.clear()
    assert held.held() is None


def test_a_new_hold_replaces_the_previous_one() -> None:
    clock = FakeClock()
    held = HeldFailure(clock=clock)
    held.hold(CredentialUnavailable("first", retry_after=1), 30)
    held.hold(CredentialUnavailable("second", retry_after=1), 2)
    error = held.held()
    assert error is not None and error.message == "second" and error.retry_after == 2


def test_the_first_caller_is_told_the_whole_hold_and_a_longer_retry_after_is_kept() -> None:
    clock = FakeClock()
    held = HeldFailure(clock=clock)
    first = CredentialUnavailable("vault answered 503", retry_after=1)
    held.hold(first, 5)
    assert first.retry_after == 5  # not 1: a caller back after 1 s would meet the hold again
    clock.advance(4.5)
    error = held.held()
    assert error is not None and error.retry_after == 1
    longer = CredentialUnavailable("vault throttled", retry_after=30)
    held.hold(longer, 5)
    assert longer.retry_after == 30  # the dependency's own advice; the app tries again after 5 s
    clock.advance(5)
    assert held.held() is None
