"""The chat window's login check, slowed down for whoever guesses.

    launch(..., auth=LoginThrottle(user, password).check)          # ui.user / ui.password
    launch(..., auth=LoginThrottle(verify=UsersLogin(store)).check)  # docent's users

The throttle does not know what a right login is: `verify(user, secret) -> bool` says
(`SharedLogin`: the one name and password of the settings; `UsersLogin`: a user of
bot/access/users.py with their password or their API token). Each wrong try waits before
it is answered, twice as long as the one before (from `first_delay` up to `max_delay`
seconds); after `lock_after` wrong tries in a row the login is refused for
`lock_seconds`, right secret or not. Counted for the window as a whole (Gradio does not
tell the check who is asking): a guesser can keep the real users out for a while, never
get in quickly. Async, so a waiting try does not hold the server's loop; `verify` runs
on a worker thread (scrypt takes a while).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
from typing import Callable

log = logging.getLogger(__name__)


class SharedLogin:
    """One name and password (settings ui.user and ui.password)."""

    def __init__(self, user: str, password: str):
        self._user, self._password = user.encode(), password.encode()

    def __call__(self, user: str, password: str) -> bool:
        # Both compared in full, in constant time: the answer's timing says nothing.
        return bool(hmac.compare_digest(user.encode(), self._user) &
                    hmac.compare_digest(password.encode(), self._password))


class UsersLogin:
    """docent's users (`store`: a bot.access.users.AccessStore): a user's name with that
    user's password, or with that user's API token (another user's token is refused)."""

    def __init__(self, store):
        self.store = store

    def __call__(self, user: str, secret: str) -> bool:
        from bot.access.users import AccessError
        try:
            # Both checks always run (one scrypt each): the time does not tell which was sent.
            by_password = self.store.check_password(user, secret)
            by_token = self.store.authenticate(secret)
        except AccessError as exc:       # an unreadable access file: nobody gets in, and the log says why
            log.warning("window login refused: %s", exc)
            return False
        return by_password is not None or (by_token is not None and by_token.name == user)


class LoginThrottle:
    def __init__(self, user: str | None = None, password: str | None = None, first_delay: float = 1.0,
                 max_delay: float = 30.0, lock_after: int = 10, lock_seconds: float = 300.0,
                 clock=time.monotonic, verify: Callable[[str, str], bool] | None = None):
        """`verify`, or else SharedLogin(user, password)."""
        if verify is None:
            if user is None or password is None:
                raise ValueError("LoginThrottle needs a user and a password, or a verify function")
            verify = SharedLogin(user, password)
        self.verify = verify
        self.first_delay, self.max_delay = first_delay, max_delay
        self.lock_after, self.lock_seconds = lock_after, lock_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self.failures = 0
        self.locked_until = 0.0

    def _locked(self) -> bool:
        return self._clock() < self.locked_until

    async def check(self, user: str, password: str) -> bool:
        with self._lock:
            locked = self._locked()
        # While locked the answer is no whatever was sent: no work is spent finding out.
        right = not locked and await asyncio.to_thread(self.verify, user or "", password or "")
        with self._lock:
            locked = self._locked()
            if right and not locked:
                self.failures = 0
                return True
            self.failures += 1
            if self.failures >= self.lock_after and not locked:
                self.locked_until = self._clock() + self.lock_seconds
            delay = min(self.max_delay, self.first_delay * 2 ** min(self.failures - 1, 30))
        await asyncio.sleep(delay)
        return False
