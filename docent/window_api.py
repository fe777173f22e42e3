"""The chat window's API, the endpoints a script calls (gradio_client), JSON in and out:
ask, add_files, list_files, remove_file. Each reads only a collection the window
offers; adding and removing files need the window's login. With docent's users, the
logged-in user's rights (Service.rights_for, fresh per call) decide what each endpoint
lists, answers from and changes, as in the window."""

# No `from __future__ import annotations`: Gradio reads the endpoints' annotations
# (gr.Request) as objects to know what to pass in.
import functools

from docent.window_access import LOGIN_SETTINGS

API_LOGIN = (f"adding or removing files through the API needs a login: {LOGIN_SETTINGS}, then log in "
             "(gradio_client: Client(url, auth=(user, password)))")


def add_api(gr, service, expected):
    """Declare the endpoints inside the Blocks being built (`gr`: the gradio module, imported
    by the caller; `expected`: the exceptions that are a message to the caller, not a fault)."""
    default = service.default_collection

    def endpoint(fn):
        @functools.wraps(fn)            # Gradio reads the parameters and types through the wrapper
        def call(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except expected as exc:     # the caller's mistake or a known fault: a message, no trace
                raise gr.Error(str(exc), print_exception=False) from None
        return call

    rights_of = service.rights_of

    def writable(collection, request) -> tuple:
        """(collection, rights) for a caller who may change the collection; gr.Error otherwise."""
        rights = rights_of(request)
        # Without a login every caller is anonymous; the person at the window has its buttons.
        if rights is None and (request is None or not getattr(request, "username", None)):
            raise gr.Error(API_LOGIN, print_exception=False)
        name = service.offered(collection, rights)
        refusal = service.write_refusal(name, rights)
        if refusal:
            raise gr.Error(refusal, print_exception=False)
        return name, rights

    @endpoint
    def ask(question: str, collection: str = default, history: list[list[str]] | None = None,
            request: gr.Request = None) -> dict:
        """The answer to `question` from `collection`, as `docent ask --json` prints it. `history`:
        the conversation so far, [standalone_question, answer] of each earlier answer that
        did not abstain, for a follow-up."""
        rights = rights_of(request)
        name = service.offered(collection, rights)
        history = history or []
        if not (isinstance(history, list) and all(isinstance(turn, list) and len(turn) == 2
                                                  and all(isinstance(t, str) for t in turn) for turn in history)):
            raise gr.Error("history: a list of [question, answer] pairs", print_exception=False)
        service.ready.wait()
        return service.stream(str(question or ""), [tuple(turn) for turn in history], name,
                              rights=rights).finish().to_dict()

    @endpoint
    def list_files(collection: str = default, request: gr.Request = None) -> list[dict]:
        """The collection's files as `docent sources --json` lists them, the path as `source`
        (as in an answer's citations), plus `name` (the window's)."""
        # gradio_client downloads every dict with a "path" as a file: the key is renamed.
        rights = rights_of(request)
        return [{"source": f.pop("path"), **f} for f in service.file_list(service.offered(collection, rights), rights)]

    @endpoint
    def remove_file(path: str, collection: str = default, request: gr.Request = None) -> dict:
        """Drop one file (its source or name from list_files) from `collection`; needs the login."""
        name, rights = writable(collection, request)
        if not (isinstance(path, str) and service.remove(path, name, rights)):
            # The asked collection only: nothing about any other, nor its own files.
            raise gr.Error(f"collection '{name}' holds no such file (list_files gives its files)",
                           print_exception=False)
        return {"collection": name, "removed": path}

    @endpoint
    def add_files(files, collection, request: gr.Request) -> dict:
        """Add documents (or zips of folders) to `collection`; needs the login. What went in
        and what was refused, with the reasons."""
        name, rights = writable(collection, request)
        rows = [r.__dict__ for r in service.add_files(files or [], name, rights=rights)]
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
