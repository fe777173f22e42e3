"""docent's chat window (Gradio): streamed answers with clickable sources, the guard's
flags where they apply, uploads and the collection's files. UI only: every decision is
made in bot/ (bot.service.Service) and ingest/. This file wires the Gradio page;
its HTML comes from docent/window_html.py, the script API from docent/window_api.py,
and who may change files from docent/window_access.py. When the home has docent's users
(`docent users`), each person logs in as one of them and every handler works with that
user's rights, read afresh per request (Service.rights_for).

    python app.py [--host 127.0.0.1] [--port 7860] [--collection NAME] [--settings FILE]
"""

# No `from __future__ import annotations`: Gradio finds the event data argument by its
# annotation (gr.LikeData), which must stay an object, not a string.
import html
import os
import sys
import threading
import time

import click

from docent.window_access import has_login, is_loopback, read_only_reason, window_can_write
from docent.window_api import API_LOGIN, add_api
from docent.window_html import (render_answer, render_error, render_streaming, render_upload, render_working,
                                window_assets)

__all__ = ["API_LOGIN", "USERS_LOGIN", "build", "launch", "login_check", "main", "render_answer", "render_error",
           "render_streaming", "render_upload", "render_working", "window_can_write"]


USERS_LOGIN = "Log in with your docent user name and your password or API token."


def _gradio():
    # Nothing leaves the machine: no usage analytics (set before gradio is imported).
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    import gradio as gr
    return gr


def build(service):
    """The Gradio Blocks for `service` (a bot.service.Service). Its upload and remove
    controls work only where docent.window_access.window_can_write allows them, or, with
    docent's users, where the logged-in user has a write grant."""
    gr = _gradio()

    from bot.access.users import AccessError
    from bot.answer import AnswerError
    from bot.generators import GeneratorError
    from bot.present import present
    from bot.retrieval import RetrievalError
    from ingest.embedder import EmbedderError
    from ingest.store import StoreError
    from ingest.upload import accepted_suffixes
    expected = (AnswerError, GeneratorError, RetrievalError, EmbedderError, StoreError, AccessError)
    users = service.with_users
    # Decided once, from the settings the window will listen with (main() puts --host there).
    # With users there is always a login (launch), and each user's grants decide the rest.
    writable = users or window_can_write(service.settings.ui)
    read_only = None if writable else read_only_reason(service.settings.ui)
    # The upload and remove controls: off when read-only, else as Gradio makes them.
    enabled = {} if writable else {"interactive": False}

    # The logged-in user's Rights, fresh for each request (a revoked grant counts at the next click).
    rights_of = service.rights_of

    def writer(collection, request) -> tuple:
        """(rights, None), or (None, why this user may not add or remove files here: one line)."""
        try:
            rights = rights_of(request)
        except AccessError as exc:
            return None, str(exc)
        return rights, service.write_refusal(collection, rights)

    def collection_choices(rights):
        """(label, name) for each collection; one that cannot be read says so and the rest work."""
        return [(f"{name} (cannot be read)" if service.problem(name) else name, name)
                for name in service.offered_collections(rights)]

    def files_panel(collection, rights):
        """The file table, the removal choices and the status line, from one read of the sources."""
        if rights is not None and not rights.can_read_collection(collection):
            return [], [], f"⚠ Collection **{collection}** is not one you may read."
        try:
            records = service.sources(collection, rights)
            labels = service.label_counts(collection)
        except StoreError as exc:          # a damaged collection: said, and the window goes on
            return [], [], f"⚠ {exc}"
        rows = [[service.display_name(r.path, collection), r.n_chunks, r.status if r.status == "ok" else
                 f"{r.status}: {r.error or ''}", ", ".join(f"{k} {n}" for k, n in sorted(labels.get(r.path, {}).items())),
                 time.strftime("%Y-%m-%d %H:%M", time.localtime(r.ingested_at))] for r in records]
        choices = [(service.display_name(r.path, collection), r.path) for r in records]
        return rows, choices, status_line(collection, records)

    def status_line(collection, records=None, rights=None):
        if not service.ready.is_set():
            return f"… {service.stage} (the first question waits for this)"
        if service.warm_up_error:
            return f"⚠ The models could not be loaded: {service.warm_up_error}"
        if records is None:
            if rights is not None and not rights.can_read_collection(collection):
                return f"⚠ Collection **{collection}** is not one you may read."
            try:
                records = service.sources(collection, rights)
            except StoreError as exc:
                return f"⚠ {exc}"
        if not records:
            return f"✓ Ready. Collection **{collection}** is empty: add files to ask about them."
        line = (f"✓ Ready. Collection **{collection}**: {len(records)} files, "
                f"{sum(r.n_chunks for r in records)} passages.")
        watched, last_change = service.watched_since(collection)
        if watched:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last_change)) if last_change else "none yet"
            line += f" Kept in sync with its folders (last change: {when})."
        return line

    def landing(collection, rights) -> str:
        """The collection the page shows: the asked one, or, when this user may not read it,
        the first one they may (the default collection may not be theirs)."""
        if rights is None or rights.can_read_collection(collection):
            return collection
        offered = service.offered_collections(rights)
        return offered[0] if offered else collection

    def wait_ready(collection, request: gr.Request):
        rights = rights_of(request)
        collection = landing(collection, rights)
        yield status_line(collection, rights=rights)
        while not service.ready.wait(timeout=0.5):
            yield status_line(collection, rights=rights)
        yield status_line(collection, rights=rights)

    def respond(question, chat, history, answers, collection, request: gr.Request):
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
            run = service.stream(question, history, collection, rights=rights_of(request))
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

    def feedback(answers, collection, data: gr.LikeData, request: gr.Request):
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        answer = answers.get(str(index))
        if answer is None:
            return
        rating = "up" if data.liked is True or data.liked == "Like" else "down" if data.liked in (False, "Dislike") else None
        if rating is None:      # the thumb was taken back
            return
        user = getattr(request, "username", None) if users else None      # who said so, with users
        service.record_feedback(rating, answer.get("question", ""), answer, collection, user=user)
        gr.Info("Thanks: feedback saved" if rating == "up" else "Feedback saved: this answer will be looked at")

    def upload(files, collection, request: gr.Request, progress=gr.Progress()):
        if read_only:           # the page's button is off, but the handler answers raw HTTP calls too
            return render_error(read_only), gr.update(), gr.update(), gr.update(), None, gr.update()
        collection = (collection or service.default_collection).strip()
        rights, refusal = writer(collection, request)
        if refusal:             # the same: this user's controls are off, the handler still answers
            return render_error(refusal), gr.update(), gr.update(), gr.update(), None, gr.update()
        if not files:
            return "Choose files first.", gr.update(), gr.update(), gr.update(), gr.update(), gr.update()
        progress(0, desc="copying")

        def tick(done, total, name):
            progress((done, total), desc=name, unit="files")
        try:
            results = service.add_files(files, collection, tick, rights=rights)
        except expected as exc:
            return render_error(str(exc)), gr.update(), gr.update(), gr.update(), None, gr.update()
        rows, choices, status = files_panel(collection, rights)
        return (render_upload(results), rows, gr.update(choices=choices, value=None),
                gr.update(choices=collection_choices(rights), value=collection), None, status)

    def remove(path, collection, request: gr.Request):
        if read_only:
            return render_error(read_only), gr.update(), gr.update(), gr.update()
        rights, refusal = writer(collection, request)
        if refusal:
            return render_error(refusal), gr.update(), gr.update(), gr.update()
        if not path:
            return "Choose a file to remove.", gr.update(), gr.update(), gr.update()
        try:
            removed = service.remove(path, collection, rights)
        except expected as exc:
            return render_error(str(exc)), gr.update(), gr.update(), gr.update()
        message = f"Removed {service.display_name(path, collection)}." if removed else "That file is not in the collection."
        rows, choices, status = files_panel(collection, rights)
        return html.escape(message), rows, gr.update(choices=choices, value=None), status

    def switch(collection, request: gr.Request):
        collection = (collection or service.default_collection).strip()
        rows, choices, status = files_panel(collection, rights_of(request))
        return [], [], {}, rows, gr.update(choices=choices, value=None), status

    def open_page(collection, request: gr.Request):
        """What the page shows about the collections, sent once the visitor is in: none of
        it is in the page itself, which anyone who can reach the port may fetch."""
        rights = rights_of(request)
        collection = landing(collection, rights)        # the default one may not be theirs
        rows, choices, _ = files_panel(collection, rights)
        return (gr.update(choices=collection_choices(rights), value=collection), rows,
                gr.update(choices=choices, value=None))

    def write_controls(collection, request: gr.Request):
        """With users: this user's upload and remove controls, on or off with the reason."""
        _, refusal = writer((collection or service.default_collection).strip(), request)
        on = gr.update(interactive=refusal is None)
        note = gr.update(value=render_error(refusal) if refusal else "", visible=bool(refusal))
        return on, on, on, note, note

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
                    if read_only:
                        gr.HTML(render_error(read_only), elem_id="docent-read-only")
                    files = gr.File(file_count="multiple", file_types=accepted_suffixes(), type="filepath",
                                    label=f"Documents or a zip of a folder (up to {service.settings.ui.max_upload_mb:g} MiB)",
                                    elem_id="docent-files", **enabled)
                    add = gr.Button("Add to collection", elem_id="docent-add", **enabled)
                    if users:       # filled per user (write_controls): why they cannot add files here
                        add_note = gr.HTML(visible=False, elem_id="docent-write-note")
                    upload_result = gr.HTML(elem_id="docent-upload-result")
                with gr.Accordion("Files in the collection", open=False):
                    table = gr.Dataframe([],
                                         headers=["file", "passages", "status", "labels", "ingested"],
                                         interactive=False, wrap=True, elem_id="docent-sources")
                    with gr.Row():
                        chosen = gr.Dropdown([], label="File",
                                             scale=3, elem_id="docent-remove-file", **enabled)
                        drop = gr.Button("Remove from collection", size="sm", scale=1, elem_id="docent-remove",
                                         **enabled)
                    remove_result = gr.Markdown()
                    if users:
                        remove_note = gr.HTML(visible=False, elem_id="docent-write-note-remove")
                    if read_only:
                        gr.HTML(render_error(read_only), elem_id="docent-read-only-remove")

        # The window's own handlers are private: unlisted, and the Gradio clients refuse to
        # call them (the page calls them by index). A script uses the API below.
        private = dict(api_visibility="private")
        opened = demo.load(open_page, inputs=collection, outputs=[collection, table, chosen], **private)
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
        if users:
            controls = [files, add, drop, add_note, remove_note]
            # After open_page: the collection it lands on may not be the default one.
            opened.then(write_controls, collection, controls, **private)
            collection.change(write_controls, collection, controls, **private)
        add_api(gr, service, expected)
    # launch() checks it listens where this was decided for.
    demo.docent_writes_without_login = writable and not has_login(service.settings.ui)
    return demo


def login_check(service):
    """The window's default login: docent's users (name, with their password or API token)
    when the service has them; else ui.user and ui.password when both are set; else None.
    Either way through bot.login.LoginThrottle (wrong tries slowed down, then locked)."""
    from bot.login import LoginThrottle, UsersLogin
    config = service.settings.ui
    if service.with_users:
        if config.user and config.password:
            click.echo("docent: ui.user and ui.password are not used: this home has users, who log in "
                       "with their own name and password (docent users password NAME) or API token", err=True)
        return LoginThrottle(verify=UsersLogin(service.access)).check
    if config.user and config.password:
        return LoginThrottle(config.user, config.password).check
    return None


def launch(demo, service, host: str, port: int, block: bool = True, auth=None):
    """`auth`: the login check (default: login_check(service)). It must be a coroutine
    function: Gradio awaits only those."""
    config = service.settings.ui
    if auth is None:
        auth = login_check(service)
    if not is_loopback(host) and auth is None:
        if getattr(demo, "docent_writes_without_login", False):
            # build() let the page change files because ui.host was a loopback address.
            raise ValueError(f"the window was built to listen on {config.host} (its page may add and remove "
                             f"files without a login), not on {host}: build it with ui.host = {host!r}")
        click.echo(f"warning: listening on {host} without a login: anyone who reaches this port can read "
                   "the collections (set ui.user and ui.password)", err=True)
    gr = _gradio()
    # System fonts: the default theme would fetch its font from Google.
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    # The window's CSS and script, as they are in docent/templates.
    css, head = window_assets()
    message = USERS_LOGIN if service.with_users else None
    return demo.launch(server_name=host, server_port=port, auth=auth, auth_message=message, css=css, head=head,
                       theme=theme,
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
    they are ready). When the home has users (`docent users add`), each logs in with their
    name and password (`docent users password NAME`) or API token, and sees and changes
    only what their groups were granted. Without users: set ui.user and ui.password (env
    DOCENT_UI__USER, DOCENT_UI__PASSWORD) before listening on anything but this machine;
    without them, a window listening on another address cannot add or remove files."""
    from docent.settings import SettingsError, load_settings
    try:
        settings = load_settings(settings_file)
    except SettingsError as exc:
        click.echo(f"docent: {exc}", err=True)
        sys.exit(2)
    if collection:
        settings = settings.with_values("ingest", collection=collection)
    if host:
        # In the settings, so build() decides what the page may do for the address it listens on.
        settings = settings.with_values("ui", host=host)
    from bot.access.users import AccessError
    from bot.service import Service
    try:
        service = Service(settings, home=home)
    except (SettingsError, AccessError) as exc:       # a wrong setting, an unreadable access.db
        click.echo(f"docent: {exc}", err=True)
        sys.exit(2)
    click.echo("docent: loading the models in the background…", err=True)
    threading.Thread(target=service.warm_up, args=(settings.ingest.collection,), daemon=True).start()
    demo = build(service)
    launch(demo, service, settings.ui.host, port or settings.ui.port)


if __name__ == "__main__":
    main()
