# cython: language_level=3
"""`Lock`: the append buffer's mutex, taken and given back in C on the hot path.

A `threading.Lock` costs the compiled append two calls into the interpreter and two semaphore
operations per bar (~90 ns of ~600). This lock is a flag that the global interpreter lock
guards: C code that holds the interpreter lock and runs no Python code between reading the flag
and setting it cannot be interleaved with another thread, so an uncontended `take` and `give`
are a test and a store. A thread that finds the flag set (its holder let the interpreter lock
go: a flush waiting on DuckDB, a journal write) sleeps on a `threading.Lock` used as a wake-up
signal, which `give` releases when someone waits. A sleeper that wakes re-tests the flag, so a
wake-up that another thread beat it to is harmless.

Python code uses it as it used `threading.Lock`: ``with lock:``, `acquire` (with ``blocking``
and ``timeout``), `release`, `locked`. It is not reentrant, and, like a `threading.Lock`, may
be released by another thread than the one that took it.
"""

cimport cython

import threading
from time import monotonic


@cython.final
cdef class Lock:
    """A mutex for threads of one interpreter: `threading.Lock`'s face, C on its fast path."""

    def __init__(self):
        self._held = False
        self._waiting = 0
        self._wake = threading.Lock()
        self._wake.acquire()  # locked: a sleeper waits on it until `give` releases it

    cdef int take(self) except -1:
        """Acquire, waiting as long as it takes (the compiled append's way in)."""
        if not self._held:
            self._held = True  # no Python code ran since the test: no thread came between
            return 0
        self._wait(-1.0)
        return 0

    cdef int give(self) except -1:
        """Release (the holder's way out); wakes a sleeper if there is one."""
        if not self._held:
            raise RuntimeError("release unlocked lock")
        self._held = False
        if self._waiting and self._wake.locked():
            self._wake.release()
        return 0

    cdef bint _wait(self, double timeout) except -1:
        # Set the flag, at once if it is clear, else once a sleep finds it clear; False if
        # `timeout` (seconds; negative: none) passed first.
        cdef double deadline = monotonic() + timeout if timeout >= 0 else 0.0
        cdef double left
        while self._held:
            if timeout < 0:
                left = -1.0
            else:
                left = deadline - monotonic()
                if left <= 0:
                    return False
            self._waiting += 1
            try:
                self._wake.acquire(True, left)  # lets the interpreter lock go while it sleeps
            finally:
                self._waiting -= 1
        self._held = True
        return True

    def acquire(self, bint blocking=True, double timeout=-1):
        """Acquire the lock as `threading.Lock.acquire` does; True if it was acquired."""
        if not blocking and timeout != -1:
            raise ValueError("can't specify a timeout for a non-blocking call")
        if timeout < 0 and timeout != -1:
            raise ValueError("timeout value must be a non-negative number")
        if not blocking and self._held:
            return False
        return self._wait(timeout)  # takes a free lock at once

    def release(self):
        """Release the lock; RuntimeError if it is not held."""
        self.give()

    def locked(self):
        """Whether some thread holds the lock."""
        return self._held

    def __enter__(self):
        self.take()
        return True

    def __exit__(self, *exc):
        self.give()
        return False

    def __repr__(self):
        return f"<warehouse Lock {'locked' if self._held else 'unlocked'}>"
