"""Token buckets for requests/minute and tokens/minute, plus a shared pause for 429 Retry-After."""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """An async token bucket refilling `per_minute` units a minute, holding at most one minute's worth.

    `take(n)` waits until n units are available (n larger than the capacity waits for a full bucket and
    goes into debt, so a huge request cannot block forever). `per_minute=None` disables the bucket.
    """

    def __init__(self, per_minute: float | None, clock=time.monotonic):
        self.rate = per_minute / 60.0 if per_minute else None
        self.capacity = float(per_minute or 0)
        self.level = self.capacity
        self.clock = clock
        self.stamp = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    async def take(self, n: float = 1.0) -> float:
        """Wait for n units; return the seconds waited."""
        if self.rate is None:
            return 0.0
        waited = 0.0
        async with self._lock:  # first come, first served
            need = min(n, self.capacity)
            while True:
                self._refill()
                if self.level >= need:
                    self.level -= n
                    return waited
                delay = (need - self.level) / self.rate
                waited += delay
                await asyncio.sleep(delay)

    def refund(self, n: float) -> None:
        """Give back units (negative n charges more), e.g. once the real token count is known."""
        if self.rate is not None:
            self._refill()
            self.level = min(self.capacity, self.level + n)


class Pause:
    """A shared "nobody sends before t" deadline, set from 429 Retry-After answers."""

    def __init__(self) -> None:
        self.until = 0.0

    def extend(self, seconds: float) -> None:
        self.until = max(self.until, time.monotonic() + max(0.0, seconds))

    async def wait(self) -> None:
        while (left := self.until - time.monotonic()) > 0:
            await asyncio.sleep(left)
