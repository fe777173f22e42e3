"""docent's chat window (Gradio): streamed answers with clickable sources, the guard's
flags where they apply, uploads and the collection's files. UI only: every decision is
made in bot/ (bot.service.Service) and ingest/.

    python app.py [--host 127.0.0.1] [--port 7860] [--collection NAME] [--settings FILE]
"""

# No `from __future__ import annotations`: Gradio finds the event data argument by its
# annotation (gr.LikeData), which must stay an object, not a string.
import html
import os
import re
import sys
import threading
import time
import uuid

import click

# A click on a citation marker [n] opens that source below the answer and scrolls to it.
HEAD = """<script>
document.addEventListener("click", (event) => {
  const link = event.target.closest("a.docent-cite");
  if (!link) return;
  event.preventDefault();
  // Gradio's sanitizer drops data- attributes: the target is named in a class.
  const target = [...link.classList].find((c) => c.startsWith("docent-to-"));
  const source = target && document.querySelector(`details.${target.replace("docent-to-", "docent-src-")}`);
  if (!source) return;
  source.open = true;
  source.classList.add("docent-opened");
  source.scrollIntoView({block: "nearest"});
});
</script>"""

CSS = """
.docent-cite { cursor: pointer; font-weight: 600; text-decoration: none; }
.docent-flagged { text-decoration: underline wavy #d97706; text-underline-offset: 3px; }
.docent-flag-mark { color: #d97706; cursor: help; }
.docent-unconfirmed { text-decoration: underline dotted #94a3b8; text-underline-offset: 3px; }
.docent-unconfirmed-mark { color: #94a3b8; cursor: help; font-size: .8em; }
.docent-quiet { color: #64748b; }
.docent-notes, .docent-flags, .docent-warnings { margin-top: .6em; font-size: .92em; }
.docent-flags div, .docent-warnings div { margin: .2em 0; }
.docent-flags div { color: #92400e; }
.docent-warnings div { color: #991b1b; }
.docent-blocked, .docent-abstained, .docent-error { padding: .4em .6em; border-radius: 6px; margin-bottom: .4em; }
.docent-blocked { background: #fee2e2; color: #991b1b; }
.docent-abstained { background: #e0f2fe; color: #075985; }
.docent-error { background: #fef3c7; color: #92400e; }
.docent-sources { margin-top: .6em; font-size: .92em; }
.docent-sources summary { cursor: pointer; }
.docent-sources .docent-passage { white-space: pre-wrap; padding: .3em .6em; border-left: 3px solid #cbd5e1; }
.docent-sources mark { background: #fde68a; }
.docent-opened summary { font-weight: 600; }
.docent-upload-failed { color: #991b1b; }
.docent-working { color: #64748b; font-style: italic; }
"""

FLAG_TITLES = {"unsupported": "Not backed by the passages", "contradicted": "Contradicted by the passages"}
ACTION_WORDS = {"redacted": "masked", "blocked": "withheld", "flagged": "flagged"}


# --- rendering: an AnswerView (bot/present.py) as HTML ------------------------------------

def _text(text: str) -> str:
    """Escaped text; line breaks kept; `code` shown as code; [n] markers left for _cites."""
    escaped = html.escape(text).replace("\n", "<br>")
    return re.sub(r"`([^`<]+)`", r"<code>\1</code>", escaped)


def _cites(escaped: str, turn: str | int, numbers: set[int]) -> str:
    """Citation markers that point at a listed source become links that open it."""

    def link(match):
        n = int(match.group(1))
        if n not in numbers:
            return match.group(0)
        return f'<a class="docent-cite docent-to-{turn}-{n}" href="#">[{n}]</a>'
    return re.sub(r"\[(\d{1,2})\]", link, escaped)


def render_answer(view, turn: str | int | None = None) -> str:
    """One assistant message: notices, the answer with flagged sentences marked and
    clickable citations, the flags and warnings, then the sources (closed)."""
    # Names this answer's links and sources apart from every other answer's on the page.
    turn = turn if turn is not None else uuid.uuid4().hex[:10]
    numbers = {s.n for s in view.sources}
    out = []
    if view.blocked:
        out.append('<div class="docent-blocked">■ Withheld by the leak policy</div>')
    elif view.abstained:
        out.append('<div class="docent-abstained">○ The documents do not answer this</div>')
    body = []
    for piece in view.pieces:
        text = _cites(_text(piece.text), turn, numbers)
        if piece.flag and piece.quiet:
            # Not confirmed by the passages: a quiet mark, not a warning.
            title = html.escape(piece.flag.get("message", ""), quote=True)
            body.append(f'<span class="docent-unconfirmed" title="{title}">{text}</span>'
                        f'<sup class="docent-unconfirmed-mark" title="{title}">?</sup>')
        elif piece.flag:
            title = html.escape(piece.flag.get("message", ""), quote=True)
            body.append(f'<span class="docent-flagged" title="{title}">{text}</span>'
                        f'<sup class="docent-flag-mark" title="{title}">⚠</sup>')
        else:
            body.append(text)
    out.append(f'<div class="docent-answer">{"".join(body)}</div>')
    flagged = [p.flag for p in view.pieces if p.flag and not p.quiet]
    if flagged:
        out.append('<div class="docent-flags">' + "".join(
            f'<div>⚠ <b>{FLAG_TITLES.get(f["kind"], f["kind"])}</b>: {html.escape(f.get("message", ""))}</div>'
            for f in flagged) + "</div>")
    if any(p.quiet for p in view.pieces):
        out.append('<div class="docent-notes docent-quiet">? Marked text is not confirmed word for word by the '
                   'passages: check it against the sources.</div>')
    if view.warnings:
        out.append('<div class="docent-warnings">' + "".join(
            f'<div>⚠ <b>{html.escape(_leak_title(f))}</b>: {html.escape(f.get("message", ""))}</div>'
            for f in view.warnings) + "</div>")
    if view.notes:
        out.append('<div class="docent-notes">' + "".join(
            f'<div>✎ {html.escape(f.get("message", ""))}</div>' for f in view.notes) + "</div>")
    if view.sources:
        label = "Sources" if any(s.cited for s in view.sources) else "Closest passages"
        items = []
        for s in view.sources:
            passage = html.escape(s.before) + (f"<mark>{html.escape(s.mark)}</mark>" if s.mark else "") + html.escape(s.after)
            items.append(f'<details class="docent-source docent-src-{turn}-{s.n}"><summary>[{s.n}] '
                         f'{html.escape(s.location)}</summary><div class="docent-passage">{passage}</div></details>')
        out.append(f'<div class="docent-sources"><b>{label}</b>{"".join(items)}</div>')
    return "".join(out)


def _leak_title(flag: dict) -> str:
    kind = {"secret": "Secret", "pii": "Personal data", "confidential": "Confidential passage",
            "extraction_attempt": "Question asks for protected data", "prompt_injection": "Instructions in a passage",
            "restricted_overlap": "Restricted text"}.get(flag["kind"], flag["kind"])
    action = ACTION_WORDS.get(flag.get("action", ""), "")
    return f"{kind} ({action})" if action else kind


def render_streaming(text: str) -> str:
    return f'<div class="docent-answer">{_text(text)}</div>'


def render_working(what: str) -> str:
    """What is being done before the first word of the answer (a prompt takes seconds to read)."""
    return f'<div class="docent-working">{html.escape(what)}</div>'


def render_error(message: str) -> str:
    return f'<div class="docent-error">⚠ {html.escape(message)}</div>'


def render_upload(results) -> str:
    if not results:
        return "Nothing was uploaded."
    rows = []
    for r in results:
        css = ' class="docent-upload-failed"' if r.action == "failed" else ""
        detail = (f"{r.chunks} passage{'s' if r.chunks != 1 else ''}" if r.action in ("added", "updated", "unchanged")
                  else html.escape(r.reason))
        rows.append(f"<tr{css}><td>{html.escape(r.name)}</td><td>{r.action}</td><td>{detail}</td></tr>")
    return ('<table class="docent-upload"><tr><th>file</th><th>result</th><th></th></tr>'
            + "".join(rows) + "</table>")


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
        names = service.collections()
        names = names if service.default_collection in names else [service.default_collection] + names
        return [(f"{name} (cannot be read)" if service.problem(name) else name, name) for name in names]

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

        demo.load(open_page, inputs=collection, outputs=[collection, table, chosen])
        demo.load(wait_ready, inputs=collection, outputs=status)
        asked = [question, chat, history, answers, collection]
        events = [send.click(respond, asked, [question, chat, history, answers]),
                  question.submit(respond, asked, [question, chat, history, answers])]
        stop.click(None, cancels=events)
        clear.click(lambda: ([], [], {}), None, [chat, history, answers])
        chat.clear(lambda: ([], {}), None, [history, answers])      # the chat's own clear icon
        chat.like(feedback, [answers, collection], None)
        add.click(upload, [files, collection], [upload_result, table, chosen, collection, files, status])
        drop.click(remove, [chosen, collection], [remove_result, table, chosen, status])
        collection.change(switch, collection, [chat, history, answers, table, chosen, status])
    return demo


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
    return demo.launch(server_name=host, server_port=port, auth=auth, css=CSS, head=HEAD, theme=theme,
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
