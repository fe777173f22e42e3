"""Guard checks by name: the scanners settings `guard.scanners` adds after docent's own
(groundedness, leaks, restricted text), registered by other packages under the entry-point
group `docent.scanners`

    [project.entry-points."docent.scanners"]
    internal-hosts = "my_package.hosts:InternalHostScanner"     # a callable taking Settings

The callable returns a Scanner (bot/guard/findings.py): `scan(question, answer, passages)
-> [Finding]`. What each finding's action does is the policy step's work
(bot/steps/policy.py): flagged adds a flag, redacted replaces its span by its
`replacement`, blocked withholds the answer. A scanner that never blocks says so with
`may_block = False`; otherwise answers are checked before they are shown, never streamed,
so that blocked text never reaches a client."""

from __future__ import annotations

from typing import Sequence

from docent.plugins import EntryPoints

ENTRY_POINT_GROUP = "docent.scanners"
PLUGINS = EntryPoints(ENTRY_POINT_GROUP, "guard scanner")


class ScannerError(ValueError):
    """An unknown scanner name, or a package's scanner that cannot be made."""


def installed_scanners() -> dict:
    """Scanners other packages register (name -> importlib.metadata.EntryPoint)."""
    return PLUGINS.installed()


def forget_installed_scanners() -> None:
    """Read the entry points again on the next lookup (after installing a package)."""
    PLUGINS.forget()


def scanner_factory(name: str):
    """The callable registered under `name` (ScannerError naming the known ones if none)."""
    if name not in installed_scanners():
        known = ", ".join(sorted(installed_scanners())) or "none is installed"
        raise ScannerError(f"unknown guard.scanners entry {name!r}: the installed scanners are: {known}")
    return PLUGINS.load(name, ScannerError)


def make_scanners(names: Sequence[str], settings) -> list:
    """The scanners `names` lists, in order, each made once from the settings."""
    scanners = []
    for name in names:
        factory = scanner_factory(name)
        try:
            scanner = factory(settings)
        except Exception as exc:  # noqa: BLE001 - a plugin's own fault, named
            raise ScannerError(f"the guard scanner {name!r} cannot be made: {exc}") from None
        if not callable(getattr(scanner, "scan", None)):
            raise ScannerError(f"the guard scanner {name!r} has no scan(question, answer, passages) method")
        scanners.append(scanner)
    return scanners


def may_block(scanners: Sequence) -> bool:
    """Whether any of these scanners can withhold an answer (then it is held until checked)."""
    return any(getattr(scanner, "may_block", True) for scanner in scanners)
