"""The chat window's HTML: an AnswerView (bot/present.py), the progress and error
messages and the upload report, rendered from docent/templates (Jinja2, autoescaped:
document and model text is never HTML). No Gradio here, so it is tested without a server."""

from __future__ import annotations

import functools
import re
import uuid


@functools.cache
def templates():
    """The window's Jinja2 templates, built on the first render (jinja2 comes with Gradio;
    importing it at start would slow `python app.py --help`)."""
    import jinja2
    env = jinja2.Environment(loader=jinja2.PackageLoader("docent", "templates"), autoescape=True)
    env.filters.update(text=_text, cites=_cites)
    return env


def window_assets() -> tuple[str, str]:
    """The window's CSS and the script for the page head, as they are in docent/templates."""
    env = templates()
    return tuple(env.loader.get_source(env, name)[0] for name in ("window.css", "window_head.html"))


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
    return templates().get_template("answer.html").render(view=view, turn=turn, numbers={s.n for s in view.sources})


def _message(kind: str, text: str) -> str:
    return str(getattr(templates().get_template("messages.html").module, kind)(text))


def render_streaming(text: str) -> str:
    return _message("streaming", text)


def render_working(what: str) -> str:
    """What is being done before the first word of the answer (a prompt takes seconds to read)."""
    return _message("working", what)


def render_error(message: str) -> str:
    return _message("error", message)


def render_upload(results) -> str:
    return templates().get_template("upload.html").render(results=results)
