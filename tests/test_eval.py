"""`docent eval`: test questions made from a collection (and the bad drafts dropped), the
JSONL test set round trip, asking with resume after an interruption, and the command
end to end with a scripted model."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from conftest import FakeEmbedder, FakeGenerator, quote_passage

QUESTIONS = {
    "nightly backup job": ("When does the nightly backup job copy the database?", "at 02:00",
                           "The nightly backup job copies the database to the object store at 02:00"),
    "corporate VPN": ("Which VPN profile do engineers use to reach the staging cluster?", "staging-eu",
                      "connect to the corporate VPN with the WireGuard client and the profile named staging-eu"),
    # The model misquotes this one: the draft must be dropped.
    "API keys are rotated": ("How are API keys rotated?", "from the admin console",
                             "API keys can be rotated by calling the rotate endpoint"),
}


def script(messages) -> str:
    """The local model, scripted: writes test questions, paraphrases, and answers by
    quoting the first passage."""
    system, user = messages[0]["content"], messages[-1]["content"]
    if system.startswith("You write test questions for an assistant that answers"):
        for marker, (question, answer, quote) in QUESTIONS.items():
            if marker in user:
                return f"Question: {question}\nAnswer: {answer}\nQuote: {quote}"
        return "I cannot write a question."
    if system.startswith("You write test questions for an assistant that must say"):
        return "Question: How do I configure Kerberos tickets for the backup job?"
    if system.startswith("You rewrite questions"):
        return ("1. At what time does the nightly backup job copy the database?\n"
                "2. When is the database copied by the nightly backup job?")
    return quote_passage(messages)


@pytest.fixture
def eval_docs(tmp_path):
    root = tmp_path / "evaldocs"
    root.mkdir()
    (root / "backup.md").write_text(
        "# Backups\n\nThe nightly backup job copies the database to the object store at 02:00 and keeps every "
        "copy for 30 days, after which the oldest copy is deleted automatically by the retention task.\n")
    (root / "vpn.md").write_text(
        "# VPN\n\nTo reach the staging cluster from home, connect to the corporate VPN with the WireGuard client "
        "and the profile named staging-eu, which the IT desk sends to every new engineer on request.\n")
    (root / "keys.md").write_text(
        "# Keys\n\nAPI keys are rotated from the admin console by pressing Rotate; the old key keeps working for "
        "24 hours so that running jobs can pick up the new one before it stops.\n")
    return root


@pytest.fixture
def answerer(settings, eval_docs):
    from bot.answer import Answerer
    from bot.retrieval import Retriever
    from ingest.pipeline import Ingestor
    embedder = FakeEmbedder()
    s = settings.with_values("retrieval", min_score=0.0)
    Ingestor(s, embedder=embedder).ingest([eval_docs])
    return Answerer(s, retriever=Retriever(s, embedder), generator=FakeGenerator(script))


def test_questions_are_made_from_the_collection_and_bad_drafts_dropped(answerer, tmp_path):
    from evaluation.dataset import read_dataset
    from evaluation.synth import QuestionWriter, build_test_set
    store = answerer.retriever.collection()
    writer = QuestionWriter(answerer.generator, answerer.prompts)
    def search(question):
        return [p.text for p in answerer.retriever.retrieve(question, k=10).passages]
    items, dropped = build_test_set(writer, store, search, tmp_path / "out" / "dataset.jsonl", questions=4,
                                    unanswerable=0.25, paraphrased=1)
    answerable = [i for i in items if i.answerable]
    assert {i.question for i in answerable} == {QUESTIONS["nightly backup job"][0], QUESTIONS["corporate VPN"][0]}
    assert dropped.get("quote not in the passage") == 1          # the misquoted draft, kept for a look:
    [seen] = [json.loads(l) for l in (tmp_path / "out" / "dataset.dropped.jsonl").read_text().splitlines()
              if "rotate endpoint" in l]
    assert seen["reason"] == "quote not in the passage" and "Question: How are API keys rotated?" in seen["draft"]
    backup = next(i for i in answerable if "backup" in i.question)
    chunk = store.chunks([backup.chunk_id])[0]
    assert backup.quotes[0] in chunk.text and backup.source_paths == [chunk.path]
    [unanswerable] = [i for i in items if not i.answerable]
    assert "Kerberos" in unanswerable.question and unanswerable.expected_behavior == "abstain"
    assert sum(bool(i.paraphrases) for i in items) == 1
    # What was saved is what was made.
    assert [i.to_dict() for i in read_dataset(tmp_path / "out" / "dataset.jsonl")] == [i.to_dict() for i in items]


def test_a_draft_is_checked_before_it_becomes_a_test_question():
    from evaluation.synth import QuestionWriter
    writer = QuestionWriter(None, None)
    text = "The nightly backup job copies the database to the object store at 02:00."
    ok = ("When does the nightly backup job run?", "at 02:00", "The nightly backup job copies the database")
    assert writer.check(*ok, text) == ""
    assert writer.check("When does the nightly backup job run?", "at 03:00", ok[2], text) == "answer not in the passage"
    assert writer.check("Where does the nightly backup job copy to?", "a tape library offsite", ok[2], text) \
        == "answer not in the passage"
    assert writer.check("Does the backup run at 02:00?", "02:00", ok[2], text) == "the question gives the answer away"
    assert writer.check("What does the passage say about backups?", "at 02:00", ok[2], text) == "refers to the passage"
    assert writer.check("Which tool formats the plan in the given passage?", "at 02:00", ok[2], text) \
        == "refers to the passage"
    assert writer.check("What is the main topic of this guide?", "the nightly backup job", ok[2], text) \
        == "refers to the passage"
    assert writer.check("backups", "at 02:00", ok[2], text) == "not a question"
    writer._asked.append({"nightly", "backup", "job", "run"})
    assert writer.check("When does the nightly backup job run?", "at 02:00", ok[2], text) == "near duplicate"


def test_unanswerable_drafts_must_name_something_the_closest_passages_never_mention(answerer):
    from evaluation.synth import QuestionWriter
    store = answerer.retriever.collection()
    chunk = store.chunks_of(store.files()[0].path)[0]

    def search(question):
        return [p.text for p in answerer.retriever.retrieve(question, k=10).passages]
    kept, _ = QuestionWriter(FakeGenerator(lambda m: "Question: Which Kerberos realm do backups use?"),
                             answerer.prompts).unanswerable(chunk, "u1", search, store)
    assert kept is not None and not kept.answerable
    dropped, why = QuestionWriter(FakeGenerator(lambda m: "Question: When does the nightly backup job copy the database?"),
                                  answerer.prompts).unanswerable(chunk, "u2", search, store)
    assert dropped is None and "may answer it" in why
    # A generic word the passages lack ("purpose") does not make a question unanswerable.
    generic, why = QuestionWriter(FakeGenerator(lambda m: "Question: What is the purpose of the nightly backup job?"),
                                  answerer.prompts).unanswerable(chunk, "u3", search, store)
    assert generic is None and "may answer it" in why


def test_a_test_set_round_trips_and_bad_lines_are_named(tmp_path):
    from evaluation.dataset import DatasetError, EvalItem, read_dataset, write_dataset
    items = [EvalItem("a", "What is X?", "X is Y.", True, "factual", ["docs/x.md"], ["X is Y."], "answer", 3,
                      ["What's X?"]),
             EvalItem("b", "What is Z?", None, False, "unanswerable", [], [], "abstain")]
    path = tmp_path / "set.jsonl"
    write_dataset(items, path)
    assert read_dataset(path) == items
    # The shared docs_qa format reads as it is (no chunk id, no paraphrases).
    path.write_text(json.dumps({"id": "docs_qa_062", "question": "What is the default port?", "answer": None,
                                "answerable": False, "type": "unanswerable", "source_paths": [], "quotes": [],
                                "expected_behavior": "abstain", "note": "not covered"}) + "\n")
    [item] = read_dataset(path)
    assert not item.answerable and item.chunk_id is None
    path.write_text('{"id": "a", "question": "Q?"}\n{"id": "b", "question": \n')
    with pytest.raises(DatasetError, match=r"set\.jsonl:2: not valid JSON"):
        read_dataset(path)
    path.write_text('{"id": "a", "question": "Q?"}\n{"id": "a", "question": "R?"}\n')
    with pytest.raises(DatasetError, match="appears twice"):
        read_dataset(path)


def test_hits_and_scores_are_computed_against_the_source(answerer, tmp_path):
    from evaluation.dataset import EvalItem
    from evaluation.run import Evaluation
    store = answerer.retriever.collection()
    backup = next(c for f in store.files() for c in store.chunks_of(f.path) if "backup" in c.text)
    items = [EvalItem("q1", QUESTIONS["nightly backup job"][0], "at 02:00", True, "synthetic", [backup.path],
                      [], "answer", backup.id),
             EvalItem("q2", "How do I configure Kerberos tickets?", None, False, "unanswerable", [], [], "abstain")]
    rows = Evaluation(answerer, None, tmp_path / "out").run(items)
    first, second = rows
    assert first["hit_rank"] == next(n for n, r in enumerate(first["retrieved"], 1) if r["chunk_id"] == backup.id)
    assert first["answer"].startswith("The nightly backup job copies the database") and first["contains"] is True
    assert 0 < first["f1"] < 1 and first["cited_sources"] == [backup.path]
    assert second["hit_rank"] is None and second["f1"] is None


def test_a_stopped_run_resumes_where_it_stopped(answerer, tmp_path):
    from evaluation.dataset import EvalItem
    from evaluation.run import Evaluation, read_rows
    items = [EvalItem(f"q{n}", f"When does the nightly backup job copy the database, take {n}?", "at 02:00")
             for n in range(4)]
    asked = []
    real_ask = answerer.ask

    def ask(question, collection=None, rights=None):
        asked.append(question)
        if len(asked) == 3:
            raise KeyboardInterrupt
        return real_ask(question, collection, rights=rights)
    answerer.ask = ask
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        Evaluation(answerer, None, out).run(items)
    assert [r["id"] for r in read_rows(out)] == ["q0", "q1"]
    # A crash mid-line leaves a cut-off last line: it is ignored and asked again.
    with (out / "rows.jsonl").open("a") as fh:
        fh.write('{"id": "q2", "varia')
    asked.clear()
    answerer.ask = real_ask
    rows = Evaluation(answerer, None, out).run(items)
    assert [r["id"] for r in rows] == ["q0", "q1", "q2", "q3"]
    assert [r["id"] for r in read_rows(out)] == ["q0", "q1", "q2", "q3"]


def test_docent_eval_writes_a_report_from_a_collection(tmp_path, eval_docs, monkeypatch):
    from bot import generators
    from docent.cli import main
    monkeypatch.setattr(generators, "make_generator", lambda settings: FakeGenerator(script))
    home, out = tmp_path / "home", tmp_path / "report"
    env = {"DOCENT_PROFILE": "test", "DOCENT_SETTINGS": None, "DOCENT_RETRIEVAL__MIN_SCORE": "0"}

    def run(*args):
        return CliRunner().invoke(main, ["--home", str(home), *map(str, args)], env=env, catch_exceptions=False)
    assert run("ingest", eval_docs, "-q").exit_code == 0
    result = run("eval", "--questions", "3", "--unanswerable", "0.34", "--paraphrased", "1", "--out", out)
    assert result.exit_code == 0, result.output
    assert {"dataset.jsonl", "rows.jsonl", "report.html", "report.json", "recall_at_k.png", "latency.png",
            "sources.png"} <= {p.name for p in out.iterdir()}
    report = json.loads((out / "report.json").read_text())
    summary = report["summary"]
    assert summary["questions"] == 3 and summary["answerable"] == 2 and summary["unanswerable"] == 1
    assert re.search(r"retrieval\s+hit@1", result.output) and "report.html" in result.output
    assert report["meta"]["collection"] == "default"
    # The saved test set runs again as the user's own.
    again = run("eval", "--dataset", out / "dataset.jsonl", "--out", tmp_path / "again")
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "again" / "report.json").read_text())["summary"]["questions"] == 3


def test_docent_eval_as_a_user_asks_and_retrieves_only_what_they_may_read(tmp_path, eval_docs, monkeypatch):
    """--user: the test set is made from the documents the user may read, and every answer
    is retrieved with their rights: the other documents show nowhere in what eval writes."""
    from bot import generators
    from bot.access.users import AccessStore
    from docent.cli import main
    monkeypatch.setattr(generators, "make_generator", lambda settings: FakeGenerator(script))
    home, out = tmp_path / "home", tmp_path / "report"
    env = {"DOCENT_PROFILE": "test", "DOCENT_SETTINGS": None, "DOCENT_RETRIEVAL__MIN_SCORE": "0"}

    def run(*args):
        return CliRunner().invoke(main, ["--home", str(home), *map(str, args)], env=env)
    assert run("ingest", eval_docs, "-q").exit_code == 0
    store = AccessStore(home)
    store.add_user("guest", ["ops"])
    store.grant("ops", "default", "backup.md")
    result = run("eval", "--user", "guest", "--questions", "3", "--unanswerable", "0", "--paraphrased", "0",
                 "--out", out)
    assert result.exit_code == 0, result.output
    written = "".join(p.read_text(errors="ignore") for p in out.rglob("*") if p.suffix in (".jsonl", ".json", ".html"))
    assert "nightly backup" in written
    for hidden in ("vpn.md", "WireGuard", "keys.md", "admin console"):
        assert hidden not in written, hidden
    assert json.loads((out / "report.json").read_text())["meta"]["user"] == "guest"
    unknown = run("eval", "--user", "nobody", "--out", tmp_path / "r2")
    assert unknown.exit_code == 2 and "no user 'nobody'" in unknown.output


def test_docent_eval_says_what_is_wrong_with_its_input(tmp_path, eval_docs, monkeypatch):
    from bot import generators
    from docent.cli import main
    monkeypatch.setattr(generators, "make_generator", lambda settings: FakeGenerator(script))
    home = tmp_path / "home"
    env = {"DOCENT_PROFILE": "test", "DOCENT_SETTINGS": None}

    def run(*args):
        return CliRunner().invoke(main, ["--home", str(home), *map(str, args)], env=env)
    missing = run("eval", "--collection", "nothing-here", "--out", tmp_path / "r")
    assert missing.exit_code == 5 and "nothing-here" in missing.output
    assert run("ingest", eval_docs, "-q").exit_code == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    result = run("eval", "--dataset", bad, "--out", tmp_path / "r")
    assert result.exit_code == 2 and "bad.jsonl:1: not valid JSON" in result.output


def test_answers_to_rewordings_are_checked_against_the_original_answer(settings, eval_docs, tmp_path):
    """The guard reads the answer to each paraphrase against the original's: the same
    statement is backed, a different one is not."""
    from bot.answer import Answerer
    from bot.retrieval import Retriever
    from evaluation.dataset import EvalItem
    from evaluation.metrics import summarize
    from evaluation.run import Evaluation
    from ingest.pipeline import Ingestor

    def respond(messages):
        if "every Sunday" in messages[-1]["content"]:
            return ("The nightly backup job copies the database to the object store at 02:00 [1]. "
                    "API keys are rotated from the admin console by pressing Rotate [2].")
        return quote_passage(messages)
    embedder = FakeEmbedder()
    s = settings.with_values("retrieval", min_score=0.0)
    Ingestor(s, embedder=embedder).ingest([eval_docs])
    answerer = Answerer(s, retriever=Retriever(s, embedder), generator=FakeGenerator(respond))
    item = EvalItem("q", "When does the nightly backup job copy the database?", "at 02:00",
                    paraphrases=["At what time does the nightly backup job copy the database?",
                                 "When does the nightly backup job copy the database, every Sunday?"])
    rows = Evaluation(answerer, None, tmp_path / "out").run([item])
    original, same, other = rows
    assert original["answer"] == same["answer"] and same["entailment"] == 1.0
    assert other["entailment"] == 0.5          # its second sentence is not in the original answer
    assert summarize(rows)["consistency"]["entailment"] == pytest.approx((1.0 + other["entailment"]) / 2, abs=1e-3)


def test_eval_rows_mask_a_secret_in_the_reference_answer(settings, eval_docs, tmp_path):
    # A reference written from a passage that holds a key: rows and the report show it masked.
    from bot.answer import Answerer
    from bot.retrieval import Retriever
    from evaluation.dataset import EvalItem
    from evaluation.run import Evaluation
    key = "AKIAJ7Q3ZKXWPM4TNB2R"
    embedder = FakeEmbedder()
    s = settings.with_values("retrieval", min_score=0.0)
    answerer = Answerer(s, retriever=Retriever(s, embedder), generator=FakeGenerator(lambda m: "I don't know."))
    item = EvalItem("q", "Which access key does the backup job use?", f"the access key {key}")
    out = tmp_path / "out"
    rows = Evaluation(answerer, None, out).run([item])
    assert rows[0]["reference"] == "the access key [AWS_KEY redacted]"
    written = [p for p in out.rglob("*") if p.is_file()]
    assert written and not [p for p in written if key in p.read_text(errors="ignore")]
