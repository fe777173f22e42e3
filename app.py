"""docent's chat window (Gradio): streamed answers with clickable sources, the guard's
flags where they apply, uploads and the collection's files. UI only: every decision is
made in bot/ (bot.service.Service) and ingest/.

    python app.py [--host 127.0.0.1] [--port 7860] [--collection NAME] [--settings FILE]
"""

# No `from __future__ import annotations`: Gradio finds the event data argument by its
# annotation (gr.LikeData), which must stay an object, not a string.
import functools
import html
import os
import re
import sys
import threading
import time
import uuid

import click

# --- rendering: an AnswerView (bot/present.py) as HTML, from docent/templates -------------

@functools.cache
def _templates():
    """The window's Jinja2 templates, built on the first render (jinja2 comes with Gradio;
    importing it here would slow `--help`). Autoescaped: document and model text is never HTML."""
    import jinja2
    env = jinja2.Environment(loader=jinja2.PackageLoader("docent", "templates"), autoescape=True)
    env.filters.update(text=_text, cites=_cites)
    return env


def _text(text: str):
    """Escaped text; line breaks kept; `code` shown as code; [n] markers left for _cites."""
    from markupsafe import Markup, escape
    escaped = str(escape(text)).replace("\n", "<br>")
    return Markup(re.sub(r"`([^`<]+)`", r"<code>\1</code>", escaped))


def _cites(escaped, turn: str | int, numbers: set[int]):
    """Citation markers that point at a listed source become links that open it."""
    from markupsafe import Markup, escape

    def link(match):
        n = int(match.group(1))
        if n not in numbers:
            return match.group(0)
        return f'<a class="docent-cite docent-to-{escape(turn)}-{n}" href="#">[{n}]</a>'
    return Markup(re.sub(r"\[(\d{1,2})\]", link, str(escaped)))


def render_answer(view, turn: str | int | None = None) -> str:
    """One assistant message (docent/templates/answer.html)."""
    # Names this answer's links and sources apart from every other answer's on the page.
    turn = turn if turn is not None else uuid.uuid4().hex[:10]
    return _templates().get_template("answer.html").render(view=view, turn=turn, numbers={s.n for s in view.sources})


def _message(kind: str, text: str) -> str:
    return str(getattr(_templates().get_template("messages.html").module, kind)(text))


def render_streaming(text: str) -> str:
    return _message("streaming", text)


def render_working(what: str) -> str:
    """What is being done before the first word of the answer (a prompt takes seconds to read)."""
    return _message("working", what)


def render_error(message: str) -> str:
    return _message("error", message)


def render_upload(results) -> str:
    return _templates().get_template("upload.html").render(results=results)


# --- the window ---------------------------------------------------------------------------

def _gradio():
    # Nothing leaves the machine: no usage analytics (set before gradio is imported).
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr
    return gr


def build(service):
    """The Gradio Blocks for `service` (a bot.service.Service)."""
    gr = _gradio()

    from bot.answer import AnswerError
    from bot.generators import GeneratorError
    from bot.present import present
    from bot.retrieval import RetrievalError
    from ingest.embedder import EmbedderError
    from ingest.store import StoreError
    from ingest.upload import accepted_suffixes
    expected = (AnswerError, GeneratorError, RetrievalError, EmbedderError, StoreError)

    def collection_choices():
        """(label, name) for each collection; one that cannot be read says so and the rest work."""
        return [(f"{name} (cannot be read)" if service.problem(name) else name, name)
                for name in service.offered_collections()]

    def files_panel(collection):
        """The file table, the removal choices and the status line, from one read of the sources."""
        try:
            records = service.sources(collection)
            labels = service.label_counts(collection)
        except StoreError as exc:          # a damaged collection: said, and the window goes on
            return [], [], f"⚠ {exc}"
        rows = [[service.display_name(r.path, collection), r.n_chunks, r.status if r.status == "ok" else
                 f"{r.status}: {r.error or ''}", ", ".join(f"{k} {n}" for k, n in sorted(labels.get(r.path, {}).items())),
                 time.strftime("%Y-%m-%d %H:%M", time.localtime(r.ingested_at))] for r in records]
        choices = [(service.display_name(r.path, collection), r.path) for r in records]
        return rows, choices, status_line(collection, records)

    def status_line(collection, records=None):
        if not service.ready.is_set():
            return f"… {service.stage} (the first question waits for this)"
        if service.warm_up_error:
            return f"⚠ The models could not be loaded: {service.warm_up_error}"
        if records is None:
            try:
                records = service.sources(collection)
            except StoreError as exc:
                return f"⚠ {exc}"
        if not records:
            return f"✓ Ready. Collection **{collection}** is empty: add files to ask about them."
        return (f"✓ Ready. Collection **{collection}**: {len(records)} files, "
                f"{sum(r.n_chunks for r in records)} passages.")

    def wait_ready(collection):
        yield status_line(collection)
        while not service.ready.wait(timeout=0.5):
            yield status_line(collection)
        yield status_line(collection)

    def respond(question, chat, history, answers, collection):
        chat = list(chat or [])
        question = question or ""
        try:
            service.check_question(question)
        except AnswerError as exc:
            gr.Warning(str(exc))
            yield question, chat, history, answers
            return
        chat += [{"role": "user", "content": html.escape(question.strip())},
                 {"role": "assistant", "content": render_working("Starting…")}]
        yield "", chat, history, answers
        if not service.ready.is_set():
            chat[-1]["content"] = render_working("Loading the models…")
            yield "", chat, history, answers
            service.ready.wait()
        shown = ""
        try:
            run = service.stream(question, history, collection)
            for event in run:
                if event.kind == "status":
                    if not shown:
                        chat[-1]["content"] = render_working(event.text)
                        yield "", chat, history, answers
                    continue
                shown = shown + event.text if event.kind == "token" else event.text
                chat[-1]["content"] = render_streaming(shown)
                yield "", chat, history, answers
            answer = run.answer
        except expected as exc:
            chat[-1]["content"] = render_error(str(exc))
            yield "", chat, history, answers
            return
        chat[-1]["content"] = render_answer(present(answer))
        answers = {**answers, str(len(chat) - 1): answer.to_dict()}
        yield "", chat, service.remember(history, answer), answers

    def feedback(answers, collection, data: gr.LikeData):
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        answer = answers.get(str(index))
        if answer is None:
            return
        rating = "up" if data.liked is True or data.liked == "Like" else "down" if data.liked in (False, "Dislike") else None
        if rating is None:      # the thumb was taken back
            return
        service.record_feedback(rating, answer.get("question", ""), answer, collection)
        gr.Info("Thanks: feedback saved" if rating == "up" else "Feedback saved: this answer will be looked at")

    def upload(files, collection, progress=gr.Progress()):
        collection = (collection or service.default_collection).strip()
        if not files:
            return "Choose files first.", gr.update(), gr.update(), gr.update(), gr.update(), gr.update()
        progress(0, desc="copying")

        def tick(done, total, name):
            progress((done, total), desc=name, unit="files")
        try:
            results = service.add_files(files, collection, tick)
        except expected as exc:
            return render_error(str(exc)), gr.update(), gr.update(), gr.update(), None, gr.update()
        rows, choices, status = files_panel(collection)
        return (render_upload(results), rows, gr.update(choices=choices, value=None),
                gr.update(choices=collection_choices(), value=collection), None, status)

    def remove(path, collection):
        if not path:
            return "Choose a file to remove.", gr.update(), gr.update(), gr.update()
        try:
            removed = service.remove(path, collection)
        except expected as exc:
            return render_error(str(exc)), gr.update(), gr.update(), gr.update()
        message = f"Removed {service.display_name(path, collection)}." if removed else "That file is not in the collection."
        rows, choices, status = files_panel(collection)
        return html.escape(message), rows, gr.update(choices=choices, value=None), status

    def switch(collection):
        collection = (collection or service.default_collection).strip()
        rows, choices, status = files_panel(collection)
        return [], [], {}, rows, gr.update(choices=choices, value=None), status

    def open_page(collection):
        """What the page shows about the collections, sent once the visitor is in: none of
        it is in the page itself, which anyone who can reach the port may fetch."""
        rows, choices, _ = files_panel(collection)
        return gr.update(choices=collection_choices(), value=collection), rows, gr.update(choices=choices, value=None)

    with gr.Blocks(title="docent") as demo:
        with gr.Row():
            gr.Markdown("## docent: ask your documents")
            status = gr.Markdown("… Loading the models", elem_id="docent-status")
        history = gr.State([])
        answers = gr.State({})
        with gr.Row():
            with gr.Column(scale=3):
                chat = gr.Chatbot(elem_id="docent-chat", height=560, show_label=False,
                                  feedback_options=("Like", "Dislike"), line_breaks=False,
                                  placeholder="Ask a question about the documents. Every answer cites its "
                                              "passages; click [n] to read one.")
                with gr.Row():
                    question = gr.Textbox(elem_id="docent-question", show_label=False, scale=5, lines=1,
                                          max_lines=6, placeholder="How do I rotate the API keys?",
                                          autofocus=True)
                    send = gr.Button("Ask", variant="primary", scale=1, elem_id="docent-ask")
                with gr.Row():
                    stop = gr.Button("Stop", size="sm", elem_id="docent-stop")
                    clear = gr.Button("Clear conversation", size="sm", elem_id="docent-clear")
            with gr.Column(scale=2):
                collection = gr.Dropdown([service.default_collection], value=service.default_collection,
                                         label="Collection (type a new name to start one)",
                                         allow_custom_value=True, elem_id="docent-collection")
                with gr.Accordion("Add files", open=True):
                    files = gr.File(file_count="multiple", file_types=accepted_suffixes(), type="filepath",
                                    label=f"Documents or a zip of a folder (up to {service.settings.ui.max_upload_mb:g} MiB)",
                                    elem_id="docent-files")
                    add = gr.Button("Add to collection", elem_id="docent-add")
                    upload_result = gr.HTML(elem_id="docent-upload-result")
                with gr.Accordion("Files in the collection", open=False):
                    table = gr.Dataframe([],
                                         headers=["file", "passages", "status", "labels", "ingested"],
                                         interactive=False, wrap=True, elem_id="docent-sources")
                    with gr.Row():
                        chosen = gr.Dropdown([], label="File",
                                             scale=3, elem_id="docent-remove-file")
                        drop = gr.Button("Remove from collection", size="sm", scale=1, elem_id="docent-remove")
                    remove_result = gr.Markdown()

        # The window's own handlers are private: unlisted, and the Gradio clients refuse to
        # call them (the page calls them by index). A script uses the API below.
        private = dict(api_visibility="private")
        demo.load(open_page, inputs=collection, outputs=[collection, table, chosen], **private)
        demo.load(wait_ready, inputs=collection, outputs=status, **private)
        asked = [question, chat, history, answers, collection]
        events = [send.click(respond, asked, [question, chat, history, answers], **private),
                  question.submit(respond, asked, [question, chat, history, answers], **private)]
        stop.click(None, cancels=events, **private)
        clear.click(lambda: ([], [], {}), None, [chat, history, answers], **private)
        chat.clear(lambda: ([], {}), None, [history, answers], **private)      # the chat's own clear icon
        chat.like(feedback, [answers, collection], None, **private)
        add.click(upload, [files, collection], [upload_result, table, chosen, collection, files, status], **private)
        drop.click(remove, [chosen, collection], [remove_result, table, chosen, status], **private)
        collection.change(switch, collection, [chat, history, answers, table, chosen, status], **private)
        _api(gr, service, expected)
    return demo


API_LOGIN = ("adding or removing files through the API needs a login: set ui.user and ui.password (env "
             "DOCENT_UI__USER, DOCENT_UI__PASSWORD), then log in (gradio_client: Client(url, auth=(user, password)))")


def _api(gr, service, expected):
    """The endpoints a script calls (gradio_client), JSON in and out: ask, add_files,
    list_files, remove_file. Each reads only a collection the window offers; adding and
    removing files need the window's login."""
    default = service.default_collection

    def endpoint(fn):
        @functools.wraps(fn)            # Gradio reads the parameters and types through the wrapper
        def call(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except expected as exc:     # the caller's mistake or a known fault: a message, no trace
                raise gr.Error(str(exc), print_exception=False) from None
        return call

    def writable(collection, request) -> str:
        # Without a login every caller is anonymous; the person at the window has its buttons.
        if request is None or not getattr(request, "username", None):
            raise gr.Error(API_LOGIN, print_exception=False)
        return service.offered(collection)

    @endpoint
    def ask(question: str, collection: str = default, history: list[list[str]] | None = None) -> dict:
        """The answer to `question` from `collection`, as `docent ask --json` prints it. `history`:
        the conversation so far, [standalone_question, answer] of each earlier answer that
        did not abstain, for a follow-up."""
        name = service.offered(collection)
        history = history or []
        if not (isinstance(history, list) and all(isinstance(turn, list) and len(turn) == 2
                                                  and all(isinstance(t, str) for t in turn) for turn in history)):
            raise gr.Error("history: a list of [question, answer] pairs", print_exception=False)
        service.ready.wait()
        return service.stream(str(question or ""), [tuple(turn) for turn in history], name).finish().to_dict()

    @endpoint
    def list_files(collection: str = default) -> list[dict]:
        """The collection's files as `docent sources --json` lists them, the path as `source`
        (as in an answer's citations), plus `name` (the window's)."""
        # gradio_client downloads every dict with a "path" as a file: the key is renamed.
        return [{"source": f.pop("path"), **f} for f in service.file_list(service.offered(collection))]

    @endpoint
    def remove_file(path: str, collection: str = default, request: gr.Request = None) -> dict:
        """Drop one file (its source or name from list_files) from `collection`; needs the login."""
        name = writable(collection, request)
        if not (isinstance(path, str) and service.remove(path, name)):
            # The asked collection only: nothing about any other, nor its own files.
            raise gr.Error(f"collection '{name}' holds no such file (list_files gives its files)",
                           print_exception=False)
        return {"collection": name, "removed": path}

    @endpoint
    def add_files(files, collection, request: gr.Request) -> dict:
        """Add documents (or zips of folders) to `collection`; needs the login. What went in
        and what was refused, with the reasons."""
        name = writable(collection, request)
        rows = [r.__dict__ for r in service.add_files(files or [], name)]
        return {"collection": name, "added": [r for r in rows if r["action"] != "failed"],
                "refused": [{"name": r["name"], "reason": r["reason"]} for r in rows if r["action"] == "failed"]}

    for fn in (ask, list_files, remove_file):
        gr.api(fn, api_name=fn.__name__)
    # Files go through a File component, which takes only files uploaded to this server
    # (gr.api would pass on any path a caller names). Its parts are never shown.
    with gr.Group(visible=False):
        files = gr.File(file_count="multiple", type="filepath", label="files")
        collection = gr.Textbox(default, label="collection")
        result = gr.JSON(label="result")
        trigger = gr.Button()
    trigger.click(add_files, [files, collection], result, api_name="add_files")


def launch(demo, service, host: str, port: int, block: bool = True, auth=None):
    """`auth`: the login check (default: bot.login.LoginThrottle(ui.user, ui.password).check, when
    both are set). It must be a coroutine function: Gradio awaits only those."""
    config = service.settings.ui
    if auth is None and config.user and config.password:
        from bot.login import LoginThrottle
        auth = LoginThrottle(config.user, config.password).check
    if host not in ("127.0.0.1", "localhost", "::1") and auth is None:
        click.echo(f"warning: listening on {host} without a login: anyone who reaches this port can read "
                   "the collections (set ui.user and ui.password)", err=True)
    gr = _gradio()
    # System fonts: the default theme would fetch its font from Google.
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    # The window's CSS and script, as they are in docent/templates.
    css, head = (_templates().loader.get_source(_templates(), name)[0] for name in ("window.css", "window_head.html"))
    return demo.launch(server_name=host, server_port=port, auth=auth, css=css, head=head, theme=theme,
                       max_file_size=f"{config.max_upload_mb:g}mb", prevent_thread_lock=not block,
                       show_error=True, quiet=not block, footer_links=[])


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", metavar="ADDR", help="Address to listen on [default: settings ui.host, 127.0.0.1].")
@click.option("--port", type=int, metavar="N", help="Port [default: settings ui.port, 7860].")
@click.option("-c", "--collection", metavar="NAME", help="Collection shown first [default: settings ingest.collection].")
@click.option("--home", metavar="DIR", envvar="DOCENT_HOME", help="Folder holding the collections [env DOCENT_HOME].")
@click.option("--settings", "settings_file", metavar="FILE", envvar="DOCENT_SETTINGS",
              help="A TOML file overriding the default settings [env DOCENT_SETTINGS].")
def main(host, port, collection, home, settings_file) -> None:
    """Open docent's chat window in the browser (http://127.0.0.1:7860 by default).

    The models load in the background as the window opens (the status line says when
    they are ready). Set ui.user and ui.password (env DOCENT_UI__USER, DOCENT_UI__PASSWORD)
    before listening on anything but this machine."""
    from docent.settings import SettingsError, load_settings
    try:
        settings = load_settings(settings_file)
    except SettingsError as exc:
        click.echo(f"docent: {exc}", err=True)
        sys.exit(2)
    if collection:
        settings = settings.with_values("ingest", collection=collection)
    from bot.service import Service
    service = Service(settings, home=home)
    click.echo("docent: loading the models in the background…", err=True)
    threading.Thread(target=service.warm_up, args=(settings.ingest.collection,), daemon=True).start()
    demo = build(service)
    launch(demo, service, host or settings.ui.host, port or settings.ui.port)


if __name__ == "__main__":
    main()
