"""The buffer's lock (`warehouse._lock.Lock`): a mutex with `threading.Lock`'s face.

Its fast path is a flag guarded by the interpreter lock, so these tests hold it while the holder
lets the interpreter lock go (sleeps, I/O), which is when another thread can find it taken.
"""

from __future__ import annotations

import threading
import time

import pytest

from warehouse._lock import Lock


def test_acquire_release_locked() -> None:
    lock = Lock()
    assert not lock.locked()
    assert lock.acquire()
    assert lock.locked()
    assert not lock.acquire(False)
    assert not lock.acquire(timeout=0.01)
    lock.release()
    assert not lock.locked()
    with lock:
        assert lock.locked()
    assert not lock.locked()


def test_misuse_is_refused() -> None:
    lock = Lock()
    with pytest.raises(RuntimeError, match="release unlocked lock"):
        lock.release()
    # Refused as threading.Lock refuses them, whether the lock is free or held.
    with pytest.raises(ValueError, match="non-blocking"):
        lock.acquire(False, 1.0)
    with pytest.raises(ValueError, match="non-negative"):
        lock.acquire(True, -2.0)
    assert not lock.locked()
    lock.acquire()
    with pytest.raises(ValueError, match="non-blocking"):
        lock.acquire(False, 1.0)
    with pytest.raises(ValueError, match="non-negative"):
        lock.acquire(True, -2.0)
    assert lock.locked()  # a refused call changed nothing
    lock.release()


def test_an_exception_inside_with_releases() -> None:
    lock = Lock()
    with pytest.raises(KeyError), lock:
        raise KeyError("x")
    assert not lock.locked()


def test_timeout_waits_about_that_long() -> None:
    lock = Lock()
    lock.acquire()
    got: list[tuple[bool, float]] = []

    def waiter() -> None:
        started = time.monotonic()
        got.append((lock.acquire(timeout=0.2), time.monotonic() - started))

    thread = threading.Thread(target=waiter)
    thread.start()
    thread.join(5)
    assert got
    assert got[0][0] is False
    assert got[0][1] >= 0.19
    lock.release()
    assert lock.acquire(timeout=0.2)  # the timed-out waiter left nothing behind
    lock.release()


def test_a_sleeper_wakes_when_released_by_another_thread() -> None:
    lock = Lock()
    lock.acquire()
    entered = threading.Event()

    def waiter() -> None:
        with lock:
            entered.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.05)
    assert not entered.is_set()
    releaser = threading.Thread(target=lock.release)  # like threading.Lock: any thread may
    releaser.start()
    releaser.join(5)
    assert entered.wait(5)
    thread.join(5)
    assert not lock.locked()


@pytest.mark.parametrize("threads", [2, 8])
def test_mutual_exclusion_under_real_threads(threads: int) -> None:
    # Each holder lets the interpreter lock go inside (sleep(0)), so others run and find it held;
    # a second holder inside would show as two threads in the section at once.
    lock = Lock()
    inside = 0
    worst = 0
    total = 0
    rounds = 2_000

    def worker() -> None:
        nonlocal inside, worst, total
        for _ in range(rounds):
            with lock:
                inside += 1
                worst = max(worst, inside)
                time.sleep(0)
                total += 1
                inside -= 1

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for worker_thread in workers:
        worker_thread.start()
    for worker_thread in workers:
        worker_thread.join(60)
    assert worst == 1
    assert total == threads * rounds
    assert not lock.locked()


def test_timed_waiters_racing_holders_never_overlap() -> None:
    # Waiters that give up (short timeouts) and holders that barge in must leave the lock
    # consistent: no overlap, every success counted, nothing held at the end.
    lock = Lock()
    inside = 0
    worst = 0
    wins = 0
    stop = time.monotonic() + 1.0

    def worker(timeout: float) -> None:
        nonlocal inside, worst, wins
        while time.monotonic() < stop:
            if lock.acquire(timeout=timeout):
                inside += 1
                worst = max(worst, inside)
                time.sleep(0.0005)
                inside -= 1
                wins += 1
                lock.release()

    workers = [threading.Thread(target=worker, args=(t,)) for t in (0.0001, 0.001, -1, -1)]
    for worker_thread in workers:
        worker_thread.start()
    for worker_thread in workers:
        worker_thread.join(30)
    assert worst == 1
    assert wins > 0
    assert not lock.locked()
