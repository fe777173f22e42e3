"""The chat window's login check, slowed down for whoever guesses.

    launch(..., auth=LoginThrottle(user, password).check)     # a coroutine function: Gradio awaits it

Each wrong try waits before it is answered, twice as long as the one before (from
`first_delay` up to `max_delay` seconds); after `lock_after` wrong tries in a row the login
is refused for `lock_seconds`, right password or not. Counted for the window as a whole
(Gradio does not tell the check who is asking): a guesser can keep the real user out for
a while, never get in quickly. Async, so a waiting try does not hold the server's loop.
"""

from __future__ import annotations

import asyncio
import hmac
import threading
import time


class LoginThrottle:
    def __init__(self, user: str, password: str, first_delay: float = 1.0, max_delay: float = 30.0,
                 lock_after: int = 10, lock_seconds: float = 300.0, clock=time.monotonic):
        self._user, self._password = user.encode(), password.encode()
        self.first_delay, self.max_delay = first_delay, max_delay
        self.lock_after, self.lock_seconds = lock_after, lock_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self.failures = 0
        self.locked_until = 0.0

    async def check(self, user: str, password: str) -> bool:
        with self._lock:
            locked = self._clock() < self.locked_until
            # Both compared in full, in constant time: the answer's timing says nothing.
            right = hmac.compare_digest((user or "").encode(), self._user) & \
                hmac.compare_digest((password or "").encode(), self._password)
            if right and not locked:
                self.failures = 0
                return True
            self.failures += 1
            if self.failures >= self.lock_after and not locked:
                self.locked_until = self._clock() + self.lock_seconds
            delay = min(self.max_delay, self.first_delay * 2 ** min(self.failures - 1, 30))
        await asyncio.sleep(delay)
        return False
