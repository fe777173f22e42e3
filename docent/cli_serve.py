"""`docent serve`: the team server (docent/server.py) under uvicorn."""

from __future__ import annotations

import click

from docent.exits import EXIT_USAGE
from docent.terminal import fail

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@click.command()
@click.option("--host", metavar="ADDRESS", default=None,
              help="Address to listen on [default: settings server.host, 127.0.0.1]. Any other than "
                   "loopback needs users first (docent users add).")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port [default: settings server.port, 8000].")
@click.pass_obj
def serve(obj, host, port) -> None:
    """Serve docent to a team over HTTP, with an OpenAI-compatible API.

    \b
    Every request names its user: Authorization: Bearer TOKEN (docent users add NAME
    prints one). Each user reads only what their groups were granted (docent access
    grant), enforced inside the search: a document they may not read never reaches
    the model, the answer, a citation or a count. Every request is written to the
    hash-chained audit log (docent audit --verify). With no users defined, the server
    is for this machine alone (loopback, no token).

    \b
    Endpoints (the OpenAPI page: /docs):
      GET  /v1/models             the collections you may read (OpenAI's model list)
      POST /v1/chat/completions   OpenAI-compatible; model = collection; stream true or false;
                                  citations, flags and abstained in an extra "docent" object
      POST /v1/ask                {"question", "collection", "history"}: docent ask --json's object;
                                  with Accept: text/event-stream, the window's events as SSE
      POST /v1/retrieve           {"query", "collection", "k"}: the passages
      GET  /v1/sources            ?collection=NAME: the files you may see, with their labels
      POST /v1/collections/NAME/files   upload (multipart "files", optional "folder"); needs
                                  write rights there (docent access grant G --collection NAME --write)
      GET  /metrics               Prometheus text (admin group)
      GET  /healthz

    \b
    The local model answers one question at a time; the others wait in line, users
    taking turns (server.max_waiting, then 429 with Retry-After). A request whose client
    hangs up leaves the line unanswered. With generation.backend = "openai", up to
    server.parallel are answered at once.

    \b
    From Python, with the official client:
      from openai import OpenAI
      client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key=TOKEN)
      client.chat.completions.create(model="default", messages=[{"role": "user", "content": "..."}])
    """
    settings = obj.settings
    host = host or settings.server.host
    port = port or settings.server.port
    parts = obj.parts
    from bot.access.users import AccessError, AccessStore
    try:
        has_users = AccessStore(parts.home).has_users()
    except AccessError as exc:
        fail(str(exc), EXIT_USAGE)
    if host not in LOOPBACK and not has_users:
        fail(f"refusing to listen on {host} with no users: anyone who reaches it could read every document. "
             f"Add users first (docent users add NAME --group G), or listen on 127.0.0.1", EXIT_USAGE)
    answerer = obj.answerer()            # checks the settings' backends first (exit 2)
    import uvicorn

    from docent.exits import answer_errors, guarded
    from docent.server import make_app
    from docent.server_limits import limit_malloc_arenas
    limit_malloc_arenas()
    click.echo(f"docent: loading the models for http://{host}:{port} ...", err=True)
    guarded(lambda: answerer.warm_up(prefill=True), answer_errors())
    app = make_app(settings, parts=parts)
    click.echo(f"docent: serving http://{host}:{port}/v1 ({'users and rights' if has_users else 'single user, no token'}; "
               f"API page http://{host}:{port}/docs); Ctrl-C stops", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
