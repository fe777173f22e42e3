"""Entry points other packages install, one group at a time (docent.generators,
docent.scanners, ...). A group is read once, on its first lookup: reading every installed
package's metadata costs time at start, so built-in names never trigger it."""

from __future__ import annotations

import threading


class EntryPoints:
    def __init__(self, group: str, what: str):
        """`what`: how an error names one entry ("generation backend", "guard scanner")."""
        self.group, self.what = group, what
        self._points: dict | None = None
        self._lock = threading.Lock()

    def installed(self) -> dict:
        """name -> importlib.metadata.EntryPoint."""
        with self._lock:
            if self._points is None:
                from importlib.metadata import entry_points
                self._points = {point.name: point for point in entry_points(group=self.group)}
            return self._points

    def forget(self) -> None:
        """Read the group again on the next lookup (after installing a package)."""
        with self._lock:
            self._points = None

    def load(self, name: str, error: type[Exception]):
        """The callable registered under `name`; `error` (one line naming the entry) when it
        is missing, cannot be imported, or is not callable."""
        point = self.installed().get(name)
        if point is None:
            raise error(f"no {self.what} {name!r} is installed")
        try:
            found = point.load()
        except Exception as exc:      # a broken third-party package: say which, not a traceback
            raise error(f"the {self.what} {name!r} ({point.value}) cannot be loaded: {exc}") from None
        if not callable(found):
            raise error(f"the {self.what} {name!r} ({point.value}) is not a class or function")
        return found
