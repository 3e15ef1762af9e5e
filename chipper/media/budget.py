"""The memory a process lets photo decodes take at once.

Written here rather than taken from a library: a semaphore counts uploads, but a 12-megapixel
phone photo (about 70 MB while it decodes) and a 50-megapixel scan (about 300 MB) do not weigh
the same, and no library offers a weighted, first-come-first-served semaphore that works both
under gevent (made in the worker after monkey-patching, its waits yield) and with threads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Budget:
    """Uploads take `amount` bytes of `total` while they decode, in the order they asked.
    One upload alone always goes ahead, whatever its amount (the pixel limit bounds it)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self._turn = threading.Condition()
        self._tickets = 0  # handed out
        self._serving = 0  # the ticket whose turn it is to be let in

    @contextmanager
    def taken(self, amount: int) -> Iterator[None]:
        amount = max(0, min(amount, self.total))
        with self._turn:
            ticket = self._tickets
            self._tickets += 1
            while ticket != self._serving or (self.used and self.used + amount > self.total):
                self._turn.wait()
            self.used += amount
            self._serving += 1
            self._turn.notify_all()  # the next in line may fit too
        try:
            yield
        finally:
            with self._turn:
                self.used -= amount
                self._turn.notify_all()
