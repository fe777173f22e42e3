"""The chat window's login check, slowed down for whoever guesses.

    launch(..., auth=LoginThrottle(user, password).check)          # ui.user / ui.password
    launch(..., auth=LoginThrottle(verify=UsersLogin(store)).check)  # docent's users

The throttle does not know what a right login is: `verify(user, secret) -> bool` says
(`SharedLogin`: the one name and password of the settings; `UsersLogin`: a user of
bot/access/users.py with their password or their API token). Each wrong try waits before
it is answered, twice as long as the one before (from `first_delay` up to `max_delay`
seconds). After `lock_after` wrong tries in a row for one name, that name is refused for
`lock_seconds`, right secret or not: a guesser (or a colleague mistyping) locks out one
person, not the team. After `window_lock_after` wrong tries in a row across all names
(5 x lock_after unless given), the whole login locks: trying many names at once gets no
further. Async, so a waiting try does not hold the server's loop; `verify` runs on a
worker thread (scrypt takes a while).
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
    MAX_NAMES = 10_000            # names remembered; past it, those not locked are forgotten

    def __init__(self, user: str | None = None, password: str | None = None, first_delay: float = 1.0,
                 max_delay: float = 30.0, lock_after: int = 10, lock_seconds: float = 300.0,
                 clock=time.monotonic, verify: Callable[[str, str], bool] | None = None,
                 window_lock_after: int | None = None):
        """`verify`, or else SharedLogin(user, password)."""
        if verify is None:
            if user is None or password is None:
                raise ValueError("LoginThrottle needs a user and a password, or a verify function")
            verify = SharedLogin(user, password)
        self.verify = verify
        self.first_delay, self.max_delay = first_delay, max_delay
        self.lock_after, self.lock_seconds = lock_after, lock_seconds
        self.window_lock_after = window_lock_after or 5 * lock_after
        self._clock = clock
        self._lock = threading.Lock()
        self.failures = 0                              # wrong tries in a row, any name
        self._by_name: dict[str, int] = {}             # wrong tries in a row, per name
        self._locked_until: dict[str | None, float] = {}   # per name; None: the whole login

    def _locked(self, name: str) -> bool:
        now = self._clock()
        return now < self._locked_until.get(name, 0.0) or now < self._locked_until.get(None, 0.0)

    async def check(self, user: str, password: str) -> bool:
        name = user or ""
        with self._lock:
            locked = self._locked(name)
        # While locked the answer is no whatever was sent: no work is spent finding out.
        right = not locked and await asyncio.to_thread(self.verify, name, password or "")
        with self._lock:
            locked = self._locked(name)
            if right and not locked:
                self.failures = 0
                self._by_name.pop(name, None)
                return True
            self.failures += 1
            self._by_name[name] = self._by_name.get(name, 0) + 1
            until = self._clock() + self.lock_seconds
            if self._by_name[name] >= self.lock_after and not locked:
                self._locked_until[name] = until
            if self.failures >= self.window_lock_after and not locked:
                self._locked_until[None] = until
            if len(self._by_name) > self.MAX_NAMES:
                self._forget_unlocked()
            delay = min(self.max_delay, self.first_delay * 2 ** min(self.failures - 1, 30))
        await asyncio.sleep(delay)
        return False

    def _forget_unlocked(self) -> None:
        now = self._clock()
        self._locked_until = {k: t for k, t in self._locked_until.items() if t > now}
        self._by_name = {k: n for k, n in self._by_name.items() if k in self._locked_until}
