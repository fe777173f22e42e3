"""E-mail (.eml, one message; .mbox, many): each message a section headed by its subject,
then a "From: ...; To: ...; Date: ..." line and the body (the plain-text part, else the HTML
part as text). Attachments of a format docent reads are read by their own loader, each a
section of its own under the message; one that cannot be read leaves a one-line note and
the rest of the message stands. stdlib `email` (this module's name does not hide it: imports
are absolute)."""

from __future__ import annotations

import re
from pathlib import Path

from ingest.document import ExtractedDocument, Heading, LoadError
from ingest.loaders.base import Blocks, Loader, collapse, short
from ingest.textdecode import looks_binary

MAX_DEPTH = 2                   # a message's attachment, and an attached message's attachment
_HEADERS = {"from", "to", "cc", "subject", "date", "message-id", "received", "mime-version",
            "return-path", "sender", "reply-to"}
# An mbox separator: a "From " line followed by a header line. Checking the next line keeps
# an unquoted "From here on..." in a body from splitting a message in two.
_SEPARATOR = re.compile(rb"^From [^\n]*\n(?=[!-9;-~]+:)", re.M)
_QUOTED_FROM = re.compile(rb"^>(>*From )", re.M)        # mboxrd: one ">" was added on writing


def load(data: bytes) -> ExtractedDocument:
    msg = _parse(data)
    out = Blocks()
    _add_messages([msg], out, level=1, depth=0)
    subject = _header(msg, "subject")
    meta = {key: value for key in ("from", "date", "subject") if (value := _header(msg, key))}
    return ExtractedDocument(out.text(), "email", out.headings, title=subject or None, metadata=meta)


def load_mbox(data: bytes) -> ExtractedDocument:
    messages = _messages(data)
    if not messages:
        raise LoadError("no messages in the mailbox")
    out = Blocks()
    _add_messages(messages, out, level=1, depth=0)
    return ExtractedDocument(out.text(), "email", out.headings, metadata={"messages": str(len(messages))})


def _messages(data: bytes) -> list:
    """An mbox's messages, in order."""
    seps = list(_SEPARATOR.finditer(data))
    found = []
    for sep, after in zip(seps, seps[1:] + [None]):
        try:
            found.append(_parse(_QUOTED_FROM.sub(rb"\1", data[sep.end():after.start() if after else len(data)])))
        except LoadError:
            continue                    # junk between separators is no message
    return found


def _add_messages(messages, out: Blocks, level: int, depth: int) -> None:
    for msg in messages:
        try:
            _message(msg, out, level, depth)
        except LoadError:
            raise
        except Exception as exc:        # the email package can still trip over odd input
            raise LoadError(f"unreadable e-mail message: {short(exc)}") from None


def _parse(data: bytes):
    import email
    from email import policy

    if looks_binary(data[:8192]):
        raise LoadError("not an e-mail message")
    msg = email.message_from_bytes(data, policy=policy.default)
    if not _HEADERS & {key.lower() for key in msg.keys()}:
        raise LoadError("not an e-mail message")
    return msg


def _header(msg, name: str) -> str:
    try:
        return collapse(str(msg.get(name) or ""))
    except Exception:               # a header the parser cannot make sense of is no header
        return ""


def _message(msg, out: Blocks, level: int, depth: int) -> None:
    out.add(_header(msg, "subject") or "(no subject)", level)
    line = "; ".join(f"{name}: {value}" for name in ("From", "To", "Date") if (value := _header(msg, name)))
    if line:
        out.add(line)
    body_part = _body_part(msg)
    body = _body_text(body_part) if body_part is not None else ""
    if body:
        out.add(body)
    for part in _attachments(msg, body_part):
        _attachment(part, out, level + 1, depth + 1)


def _body_part(msg):
    try:
        return msg.get_body(preferencelist=("plain", "html"))
    except Exception:
        return None


def _body_text(part) -> str:
    try:
        content = part.get_content()
    except Exception:               # an unknown charset or a damaged transfer encoding
        content = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
    if isinstance(content, bytes):
        content = content.decode("utf-8", "replace")
    if part.get_content_subtype() == "html":
        from ingest.loaders import html as html_loader
        try:
            return html_loader.load(content.encode("utf-8")).text
        except LoadError:
            return ""
    lines = (line.rstrip() for line in content.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _attachments(msg, body_part):
    """Parts with a file name, and attached messages, in order; not inside attached messages."""
    stack = [msg]
    while stack:
        part = stack.pop()
        if part is body_part or _is_picture_in_body(part):
            continue
        if part is not msg and part.get_content_type() == "message/rfc822" or part.get_filename():
            yield part
        elif part.is_multipart():
            stack.extend(reversed(part.get_payload()))


def _is_picture_in_body(part) -> bool:
    # Logos and signature images drawn by the HTML body are no attachment anyone sent.
    return part.get_content_maintype() == "image" and (part.get_content_disposition() == "inline"
                                                       or "content-id" in part)


def _attachment(part, out: Blocks, level: int, depth: int) -> None:
    from ingest.loaders import loader_for

    attached_message = part.get_content_type() == "message/rfc822"
    name = collapse(part.get_filename() or "") or "attached message.eml"
    loader = LOADER if attached_message else loader_for(Path(name))
    if loader is None:
        return                      # a format docent does not read (archives, pictures without OCR)
    try:
        if depth > MAX_DEPTH:
            raise LoadError(f"attached more than {MAX_DEPTH} levels deep")
        if loader in (LOADER, MBOX_LOADER):     # read here, to keep count of the depth
            if attached_message:
                inner = [part.get_payload()[0]]
            else:
                data = part.get_payload(decode=True) or b""
                inner = [_parse(data)] if loader is LOADER else _messages(data)
            if not inner:
                raise LoadError("no messages in the mailbox")
            out.add(f"Attachment: {name}", level)
            _add_messages(inner, out, level + 1, depth)
            return
        data = part.get_payload(decode=True)
        if not data:
            raise LoadError("empty file")
        doc = loader.load(data)
    except Exception as exc:        # one unreadable attachment must not cost the message
        out.add(f"Attachment {name} not read: {exc if isinstance(exc, LoadError) else short(exc)}")
        return
    out.add(f"Attachment: {name}", level)
    out.add(doc.text)
    base = out.length - len(doc.text)
    out.headings.extend(Heading(base + h.start, h.level + level, h.title) for h in doc.headings)


LOADER = Loader("email", (".eml",), load)
MBOX_LOADER = Loader("email", (".mbox",), load_mbox)
