"""Who may change a collection through the chat window.

The window's own upload and remove handlers are private to the Gradio client, but the
server still answers them by index over raw HTTP (that is how the page calls them), so
they are as reachable as the port. Without a login (ui.user and ui.password) they may
change files only while the window listens on a loopback address: then only this
machine reaches them. The API's add_files and remove_file always need the login
(docent/window_api.py)."""

from __future__ import annotations

import ipaddress

LOGIN_SETTINGS = "set ui.user and ui.password (env DOCENT_UI__USER, DOCENT_UI__PASSWORD)"


def is_loopback(host: str) -> bool:
    """`localhost`, or an address only this machine reaches (127.0.0.0/8, ::1)."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:                # a host name: it may resolve to anything
        return False


def has_login(ui) -> bool:
    """`ui`: UiSettings. Both set: launch() puts the window behind that login."""
    return bool(ui.user and ui.password)


def window_can_write(ui) -> bool:
    """The window's own controls may add and remove files (`ui`: UiSettings, whose
    `host` is the address the window listens on)."""
    return has_login(ui) or is_loopback(ui.host)


def read_only_reason(ui) -> str:
    """What the window's upload and remove controls say when window_can_write is False."""
    return (f"Adding and removing files is off: this window listens on {ui.host} without a login, so "
            f"anyone who reaches the port could change the collections. To turn it on, {LOGIN_SETTINGS}.")
