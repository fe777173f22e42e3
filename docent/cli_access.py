"""`docent users` and `docent access`: the users of the team server and the chat window,
their API tokens, passwords (the window's login) and groups, and which groups may read
(or change) which collections and documents. Everything is kept in `<home>/access.db`
(bot/access/users.py)."""

from __future__ import annotations

import json
import sys

import click

from docent.exits import EXIT_USAGE
from docent.terminal import fail, printable

WHOLE = "*"          # how the whole collection is shown in `access list`


def _store(obj):
    from bot.access.users import AccessStore
    return AccessStore(obj.settings.home_dir(obj.home))


def _run(work):
    """Run `work`; an AccessError is one line and exit 2."""
    from bot.access.users import AccessError
    try:
        return work()
    except AccessError as exc:
        fail(str(exc), EXIT_USAGE)


def _rights(write: bool) -> str:
    return "read+write" if write else "read"


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


# -- users ---------------------------------------------------------------------------------

@click.group()
def users() -> None:
    """Users of the team server (`docent serve`) and of the chat window (`python app.py`):
    each has one API token and belongs to groups; `docent access` says which groups read
    which collections. Members of the 'admin' group read every collection.

    Once the home has a user, the chat window asks everyone to log in with their user name
    and either their password (`docent users password NAME`) or their API token, and shows
    each only the collections, files and answers their groups may read; uploads and
    removals need a write grant.

    \b
      docent users add alice --group eng
      docent users password alice
      docent users list
      docent users token alice --rotate
    """


@users.command("add")
@click.argument("name")
@click.option("--group", "groups", multiple=True, metavar="G",
              help="A group the user belongs to (repeat for several; 'admin' reads every collection).")
@click.pass_obj
def users_add(obj, name, groups) -> None:
    """Add the user NAME and print its API token.

    The token alone goes to stdout, so a script can capture it; it is stored hashed and is
    shown this once (`docent users token NAME --rotate` makes a new one). Names are 1 to 64
    letters, digits, '.', '_' or '-', starting with a letter or digit.

    \b
      docent users add alice --group eng --group ops
      TOKEN=$(docent users add ci-bot --group eng)
    """
    token = _run(lambda: _store(obj).add_user(name, groups))
    click.echo(token)
    click.echo("the token is shown once: store it now", err=True)


@users.command("list")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON list of objects: name, groups, created.")
@click.pass_obj
def users_list(obj, as_json) -> None:
    """List the users: name, groups, and when each was added (UTC).

    \b
      docent users list
      docent users list --json
    """
    found = _run(lambda: _store(obj).users())
    if as_json:
        click.echo(json.dumps([{"name": u.name, "groups": list(u.groups), "created": u.created} for u in found],
                              indent=2))
        return
    if not found:
        click.echo("no users yet: add one with `docent users add NAME --group G`", err=True)
        return
    _table([(u.name, ",".join(u.groups) or "-", u.created) for u in found], ("name", "groups", "created"))


@users.command("remove")
@click.argument("name")
@click.pass_obj
def users_remove(obj, name) -> None:
    """Remove the user NAME: its token stops working at once and it leaves its groups.

    \b
      docent users remove alice
    """
    _run(lambda: _store(obj).remove_user(name))
    click.echo(f"removed user '{printable(name)}'")


@users.command("groups")
@click.argument("name")
@click.option("--group", "groups", multiple=True, metavar="G",
              help="A group the user belongs to from now on (repeat for several).")
@click.option("--clear", is_flag=True, help="Take the user out of every group.")
@click.pass_obj
def users_groups(obj, name, groups, clear) -> None:
    """Replace the groups of the user NAME with the --group options given (the old ones
    are dropped; --clear leaves none).

    \b
      docent users groups alice --group eng --group admin
      docent users groups alice --clear
    """
    if bool(groups) == clear:
        fail("give the new groups with --group G (repeat for several), or --clear for none", EXIT_USAGE)
    user = _run(lambda: _store(obj).set_groups(name, groups))
    click.echo(f"{printable(user.name)}: {', '.join(user.groups) or 'no groups'}")


@users.command("token")
@click.argument("name")
@click.option("--rotate", is_flag=True, help="Make a new token; the old one stops working at once.")
@click.pass_obj
def users_token(obj, name, rotate) -> None:
    """Give the user NAME a new API token (--rotate) and print it alone on stdout.

    Tokens are stored hashed, so an existing one cannot be shown again: a lost token is
    replaced, never recovered.

    \b
      docent users token alice --rotate
    """
    if not rotate:
        fail("tokens are stored hashed and cannot be shown again: use --rotate to make a new one "
             "(the old one stops working)", EXIT_USAGE)
    token = _run(lambda: _store(obj).rotate_token(name))
    click.echo(token)
    click.echo("the token is shown once: store it now (the old one no longer works)", err=True)


@users.command("password")
@click.argument("name")
@click.option("--clear", is_flag=True, help="Remove the password (the API token still logs in).")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from the first line of stdin instead of prompting (for scripts).")
@click.pass_obj
def users_password(obj, name, clear, password_stdin) -> None:
    """Set the password the user NAME logs in to the chat window with (asked twice,
    not shown); --clear removes it. At least 12 characters; stored as a salted scrypt
    hash, like the tokens. The window also takes the user's API token as the password.

    \b
      docent users password alice
      printf '%s\\n' "$PASSWORD" | docent users password ci-bot --password-stdin
      docent users password alice --clear
    """
    if clear and password_stdin:
        fail("--clear takes no password: give one of --clear and --password-stdin", EXIT_USAGE)
    store = _store(obj)
    # Before the prompts: nobody types a password twice for a user that does not exist.
    if _run(lambda: store.user(name)) is None:
        fail(f"unknown user '{name}' (see docent users list)", EXIT_USAGE)
    if clear:
        _run(lambda: store.set_password(name, None))
        click.echo(f"{printable(name)}: no password (the API token still logs in)")
        return
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt(f"New password for {printable(name)}", hide_input=True, confirmation_prompt=True,
                                err=True)
    _run(lambda: store.set_password(name, password))
    click.echo(f"{printable(name)}: password set (it logs in to the chat window)")


# -- access --------------------------------------------------------------------------------

@click.group()
def access() -> None:
    """Which groups may read (or change) which collections, and which of their documents.

    A collection with no grants is readable by every user; once it has one, only the
    granted groups (and 'admin') read it. Users and their groups: `docent users`.

    \b
      docent access grant eng --collection handbook --path 'eng/**'
      docent access list --collection handbook
      docent access revoke eng --collection handbook --path 'eng/**'
    """


@access.command("grant")
@click.argument("group")
@click.option("--collection", required=True, help="The collection the grant is on.")
@click.option("--path", "glob", metavar="GLOB",
              help="Only the documents whose path matches this glob [default: the whole collection].")
@click.option("--write", is_flag=True, help="Also let the group add and remove documents.")
@click.pass_obj
def access_grant(obj, group, collection, glob, write) -> None:
    """Let GROUP read a collection (with --write, also change it), or with --path only
    the documents whose path matches a glob.

    Paths are globs matched against the document's path or any tail of it: 'eng/**'
    covers .../eng/setup.md. A collection with no grants is readable
    by every user; once it has one, only granted groups (and the 'admin' group) read it,
    and only the documents their grants cover.

    Granting again is harmless; --write adds write to a read grant. To take write away,
    revoke the grant and grant it again without --write.

    \b
      docent access grant eng --collection handbook --path 'eng/**'
      docent access grant editors --collection handbook --write
    """
    store = _store(obj)
    made = _run(lambda: store.grant(group, collection, glob, write))
    if made.write != write:
        click.echo("(the grant had write already; revoke it and grant again to make it read only)", err=True)
    click.echo(f"{printable(made.group)}: {_rights(made.write)} on {printable(made.collection)}"
               f" {printable(made.path or WHOLE)}")
    if not any(made.group in u.groups for u in _run(store.users)):
        click.echo(f"note: no user is in group '{printable(made.group)}' yet "
                   f"(docent users groups NAME --group {printable(made.group)})", err=True)


@access.command("revoke")
@click.argument("group")
@click.option("--collection", required=True, help="The collection the grant is on.")
@click.option("--path", "glob", metavar="GLOB",
              help="The grant's glob, as granted [default: the grant on the whole collection].")
@click.pass_obj
def access_revoke(obj, group, collection, glob) -> None:
    """Take a grant away from GROUP. The --path must be the glob as it was granted
    (`docent access list` shows them); without it, the grant on the whole collection.
    Exit status 2 when there was no such grant.

    \b
      docent access revoke eng --collection handbook --path 'eng/**'
      docent access revoke editors --collection handbook
    """
    if not _run(lambda: _store(obj).revoke(group, collection, glob)):
        fail(f"no grant for group '{group}' on collection '{collection}' with path "
             f"{repr(glob) if glob is not None else 'the whole collection'}: see `docent access list`", EXIT_USAGE)
    click.echo(f"revoked: {printable(group)} on {printable(collection)} {printable(glob or WHOLE)}")


@access.command("list")
@click.option("--collection", help="Only this collection's grants.")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON list of objects: group, collection, path (null: the whole collection), write.")
@click.pass_obj
def access_list(obj, collection, as_json) -> None:
    """List the grants: group, collection, path ('*' for the whole collection), and read
    or read+write. Collections without grants are not listed: every user reads them.

    \b
      docent access list
      docent access list --collection handbook --json
    """
    found = _run(lambda: _store(obj).grants(collection))
    if as_json:
        click.echo(json.dumps([{"group": g.group, "collection": g.collection, "path": g.path, "write": g.write}
                               for g in found], indent=2, ensure_ascii=False))
        return
    if not found:
        click.echo(f"collection '{printable(collection)}' has no grants: every user reads it" if collection
                   else "no grants: every user reads every collection", err=True)
        return
    _table([(printable(g.group), printable(g.collection), printable(g.path or WHOLE), _rights(g.write)) for g in found],
           ("group", "collection", "path", "access"))
