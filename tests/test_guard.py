"""The groundedness guard: exact checks, the claim splitter, citation checks, the
verdict JSON of `docent verify`, the policy in answers, and the training script."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bot.guard.facts import check, facts
from bot.guard.groundedness import GroundednessGuard, apply_policy
from bot.guard.sentences import split_claims
from conftest import FakeGenerator

PORT = "The server listens on port 5432 by default. Restart the server after editing pg_hba.conf."
KEYS = "API keys rotate every 90 days. Rotation is enabled by default for new projects."


@pytest.fixture(scope="module")
def guard():
    return GroundednessGuard()


def _labels(guard, answer, passages):
    return [(s.label, s.best_passage) for s in guard.check(answer, passages).sentences]


def test_a_changed_number_is_caught_as_a_contradiction(guard):
    verdict = guard.check("The server listens on port 8080 [1].", [PORT])
    sentence = verdict.sentences[0]
    assert sentence.label == "contradicted"
    assert "8080" in sentence.reason and "5432" in sentence.reason
    assert verdict.score == 0.0


def test_a_name_the_passages_lack_makes_the_sentence_unsupported(guard):
    result = check("Restart the server with Kubernetes after editing pg_hba.conf.", [PORT])
    assert [f.text for f in result.missing] == ["Kubernetes"]
    assert _labels(guard, "Restart the server with Kubernetes after editing pg_hba.conf [1].", [PORT]) == \
        [("unsupported", 1)]


def test_restated_sentences_are_supported(guard):
    answer = "The server listens on port 5432 [1]. API keys rotate every 90 days [2]."
    assert _labels(guard, answer, [PORT, KEYS]) == [("supported", 1), ("supported", 2)]
    assert guard.check(answer, [PORT, KEYS]).score == 1.0


def test_sentences_glued_together_in_a_passage_still_back_a_claim(guard):
    """Text extractors glue sentences ("...Goth.Antonia"): the words on either side of
    the dot are still the passage's."""
    passage = "MindGamers is a 2015 science fiction film directed by Andrew Goth.Antonia Hughes is an actress."
    assert _labels(guard, "MindGamers was directed by Andrew Goth [1].", [passage]) == [("supported", 1)]


def test_a_bare_yes_is_checked_as_the_question_it_answers(guard):
    passages = ["Kelly Jones is a Welsh singer and guitarist.", "Martha Reeves is an American singer."]
    question = "Are Kelly Jones and Martha Reeves both singers?"
    assert [s.label for s in guard.check("Yes [1][2].", passages, question).sentences] == ["supported"]
    other = "Are Kelly Jones and Martha Reeves both drummers in Paris?"
    assert [s.label for s in guard.check("Yes [1][2].", passages, other).sentences] == ["unsupported"]
    assert guard.scan(other, "Yes [1][2].", passages)[0].kind == "unsupported"


def test_negation_and_opposite_words_contradict(guard):
    assert _labels(guard, "You do not need to restart the server after editing pg_hba.conf [1].", [PORT])[0][0] == \
        "contradicted"
    assert _labels(guard, "Rotation is disabled by default for new projects [1].", [KEYS])[0][0] == "contradicted"


def test_a_negation_added_to_a_negative_sentence_contradicts_it(guard):
    passage = "There is no way to find out whether foo appears as a key."
    assert _labels(guard, "There is not no way to find out whether foo appears as a key [1].", [passage])[0][0] == \
        "contradicted"
    assert _labels(guard, "There is no way to find out whether foo appears as a key [1].", [passage])[0][0] == \
        "supported"


@pytest.mark.parametrize("claim", [
    "Only manually installed older packages are upgraded to older ones from backports [1].",
    "It does not automatically take care of optional package dependencies [1].",
    "Similarly, an UPDATE statement may provide a value to use as the rowid for each row inserted [1].",
])
def test_a_restatement_with_one_word_changed_to_its_opposite_or_another_name_contradicts(guard, claim):
    passage = ("Only manually installed older packages are upgraded to newer ones from backports. "
               "It does not automatically take care of required package dependencies. "
               "Similarly, an INSERT statement may provide a value to use as the rowid for each row inserted.")
    assert _labels(guard, claim, [passage])[0][0] == "contradicted"


def test_a_number_changed_inside_a_token_or_a_table_of_contents_line_contradicts(guard):
    git = "Look at the originals.\ngit show :1:file shows the common ancestor, git show :3:file shows the MERGE_HEAD version."
    assert _labels(guard, "git show :1:file shows the common ancestor, git show :5:file shows the MERGE_HEAD version [1].",
                   [git])[0][0] == "contradicted"
    toc = "1.6.5 Extracting data . . . . . . . . 34\n1.6.6 Script snippets for piping commands . . . . . . . . 35\n2 Next 37"
    assert _labels(guard, "1.6.6 Script snippets for piping commands . . . . . . . . 37 [1].", [toc])[0][0] == "contradicted"
    assert _labels(guard, "1.6.6 Script snippets for piping commands . . . . . . . . 35 [1].", [toc])[0][0] == "supported"


def test_a_sentence_the_passage_says_word_for_word_is_never_contradicted(guard):
    # "e.g." and a hard wrap cut the passage's sentence; "--no-relative" holds no negation.
    passage = ("When you are not in a subdirectory (e.g. in a bare repository), you can name which subdirectory\n"
               "to make the output relative to. --no-relative can be used to countermand --relative.")
    for claim in ("When you are not in a subdirectory (e.g. in a bare repository), you can name which subdirectory "
                  "to make the output relative to [1].", "--no-relative can be used to countermand --relative [1]."):
        assert _labels(guard, claim, [passage])[0][0] == "supported"
    assert _labels(guard, "When you are in a subdirectory (e.g. in a bare repository), you can name which "
                          "subdirectory to make the output relative to [1].", [passage])[0][0] == "contradicted"


def test_a_hard_wrapped_passage_is_read_as_whole_sentences(guard):
    passage = ("Recording rules and alerts contain a ruleGroup element which contains the path\n"
               "of the file and the name of the group:\n\nIt does not need a restart.")
    assert _labels(guard, "Recording rules and alerts contain a Files element which contains the path of the file "
                          "and the name of the group [1].", [passage])[0][0] == "contradicted"
    assert _labels(guard, "Recording rules and alerts contain a ruleGroup element which contains the path of the "
                          "file [1].", [passage])[0][0] == "supported"


def test_an_identifier_with_a_colon_is_a_fact():
    assert ("identifier", "V:0") in [(f.kind, f.text) for f in facts("Set V:0 to enable it.")]
    assert ("number", "10:30") in [(f.kind, f.text) for f in facts("It runs at 10:30 daily.")]


def test_a_sentence_backed_by_another_passage_is_a_wrong_citation(guard):
    sentence = guard.check("API keys rotate every 90 days [1].", [PORT, KEYS]).sentences[0]
    assert (sentence.label, sentence.best_passage, sentence.cited) == ("wrong_citation", 2, [1])
    finding = guard.scan("q", "API keys rotate every 90 days [1].", [PORT, KEYS])[0]
    assert (finding.kind, finding.evidence, finding.action) == ("wrong_citation", 2, "flagged")


def test_numbers_are_compared_as_numbers():
    assert check("It counted 39,134 people.", ["The population was 39134 in 2010."]).ok
    assert [(f.kind, f.text) for f in facts("Version 1.2.3 needs 2 GB.")] == [("number", "1.2.3"), ("number", "2"), ("name", "GB")]
    assert not check("It needs 3 GB.", ["It needs 2 GB of disk."]).ok


def test_splitter_keeps_versions_abbreviations_and_markers_in_one_sentence():
    text = "Install v1.2 from pkg.tar.gz, e.g. with apt [1]. Then edit pg_hba.conf. [2] Done!"
    assert [s.text for s in split_claims(text)] == [
        "Install v1.2 from pkg.tar.gz, e.g. with apt [1].", "Then edit pg_hba.conf. [2]", "Done!"]
    for s in split_claims(text):
        assert text[s.start:s.end] == s.text


def test_splitter_makes_list_items_and_code_blocks_claims_of_their_own():
    text = "Steps:\n- Stop the service [1].\n- Run restore. Then start it.\n2. Check logs\n```\nrestore --all. Now\n```\nEnd."
    claims = split_claims(text)
    assert [(c.kind, c.text) for c in claims] == [
        ("prose", "Steps:"), ("item", "Stop the service [1]."), ("item", "Run restore."), ("item", "Then start it."),
        ("item", "Check logs"), ("code", "```\nrestore --all. Now\n```"), ("prose", "End.")]


def test_drop_policy_cuts_unsupported_sentences_only():
    guard = GroundednessGuard(policy="drop")
    answer = "The server listens on port 5432 [1]. It was written by Alice Smith in Oslo [1]."
    findings = guard.scan("q", answer, [PORT])
    assert [(f.kind, f.action) for f in findings] == [("unsupported", "redacted")]
    assert apply_policy(answer, findings)[0] == "The server listens on port 5432 [1]."

    # The policy is also an argument of its own, not only guard.unsupported from settings:
    # a wrong one is still refused here.
    with pytest.raises(ValueError, match="'flag' or 'drop'"):
        GroundednessGuard(policy="dorp")


def test_dropping_a_sentence_moves_the_spans_after_it():
    from bot.guard.spans import shift_span
    guard = GroundednessGuard(policy="drop")
    answer = "The server listens on port 5432 [1]. It was written by Alice Smith in Oslo [1]. Restart the server [1]."
    findings = guard.scan("q", answer, [PORT])
    text, edits = apply_policy(answer, findings)
    assert text == "The server listens on port 5432 [1]. Restart the server [1]."
    start = answer.index("Restart")
    moved = shift_span([start, len(answer)], edits)
    assert text[moved[0]:moved[1]] == "Restart the server [1]."


def _verify(settings, *args):
    from docent.cli import main
    return CliRunner().invoke(main, ["verify", *args], env={"DOCENT_PROFILE": "test"})


def test_verify_json_lists_each_sentence_with_label_score_and_best_passage(tmp_path):
    (tmp_path / "port.txt").write_text(PORT)
    (tmp_path / "keys.txt").write_text(KEYS)
    result = _verify(None, "--context", str(tmp_path / "port.txt"), "--context", str(tmp_path / "keys.txt"),
                     "--answer", "The server listens on port 8080 [1]. API keys rotate every 90 days [2].", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [(s["label"], s["best_passage"]) for s in data["sentences"]] == [("contradicted", 1), ("supported", 2)]
    for sentence in data["sentences"]:
        assert {"text", "label", "score", "best_passage"} <= set(sentence) and 0 <= sentence["score"] <= 1
    assert data["groundedness"] == 0.5


def test_verify_batch_answers_each_line_in_order_and_rejects_bad_lines(tmp_path):
    batch = tmp_path / "b.jsonl"
    batch.write_text(json.dumps({"context": [KEYS], "answer": "API keys rotate every 30 days."}) + "\n" +
                     json.dumps({"context": [PORT], "answer": "The server listens on port 5432."}) + "\n" +
                     json.dumps({"context": [PORT], "answer": "Yes.", "question": "Does the server listen on port 5432?"})
                     + "\n")
    result = _verify(None, "--batch", str(batch), "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line["sentences"][0]["label"] for line in lines] == ["contradicted", "supported", "supported"]
    batch.write_text('{"answer": "no context"}\n')
    bad = _verify(None, "--batch", str(batch), "--json")
    assert bad.exit_code == 2 and "b.jsonl:1" in bad.output


def test_answers_carry_guard_flags_and_groundedness(make_answerer):
    gen = FakeGenerator(lambda m: "Press Rotate in the admin console [1]. Old keys stop working after 48 hours [1].")
    answer = make_answerer(gen).ask("How do I rotate API keys?")
    assert [f["kind"] for f in answer.flags] == ["contradicted"]
    flag = answer.flags[0]
    assert answer.text[flag["span"][0]:flag["span"][1]].startswith("Old keys stop working after 48")
    assert set(flag) == {"kind", "severity", "span", "message", "evidence", "action", "score", "confidence"}
    assert flag["confidence"] == "high"
    assert answer.to_dict()["groundedness"] == 0.5
    dropped = make_answerer(gen, guard={"unsupported": "drop"}).ask("How do I rotate API keys?")
    assert "48 hours" not in dropped.text and "Press Rotate" in dropped.text


UPLOADS = "Uploads > Limits\nThe largest file the window accepts is 4MB. Larger files are refused with a message."


def test_a_paraphrase_with_its_unit_rewritten_is_not_flagged(guard):
    verdict = guard.check("The window accepts files of up to four megabytes [1].", [UPLOADS]).sentences[0]
    assert verdict.level != "flagged", verdict


def test_a_paraphrase_with_one_number_changed_is_flagged_contradicted(guard):
    verdict = guard.check("The window accepts files of up to eight megabytes [1].", [UPLOADS]).sentences[0]
    assert (verdict.label, verdict.level) == ("contradicted", "flagged")
    assert "8" in verdict.reason and "4" in verdict.reason


WAL = ("Write Ahead Log > Settings\nThe default setting of -1 selects a size equal to 1/32nd (about 3%) of "
       "shared_buffers, but not more than the size of one WAL segment, typically 16MB.")


def test_a_fraction_spelled_out_is_not_read_as_a_number(guard):
    # "one thirty-second" is 1/32, not 30: no number conflict against the passage's "16MB" or "3%".
    verdict = guard.check("By default the WAL buffers take about one thirty-second of shared_buffers [1].",
                          [WAL]).sentences[0]
    assert verdict.label != "contradicted", verdict
    assert "30" not in verdict.reason


class FixedJudge:
    """The model as judge, answering P(yes) = `p` for every sentence it is asked about."""
    available = True

    def __init__(self, p: float):
        self.p, self.asked = p, []

    def warm_up(self):
        pass

    def backed(self, claim, passages):
        self.asked.append(claim)
        return self.p


def test_the_judge_tells_a_reworded_correct_sentence_from_a_wrong_one():
    reworded = "Anything bigger than the size limit is turned away, and the user is told why [1]."
    says_yes, says_no = FixedJudge(0.97), FixedJudge(0.03)
    backed = GroundednessGuard(judge=says_yes).check(reworded, [UPLOADS]).sentences[0]
    doubted = GroundednessGuard(judge=says_no).check(reworded, [UPLOADS]).sentences[0]
    # Few of its words are the passage's: the judge's yes keeps it from a warning.
    assert backed.level != "flagged" and doubted.level == "flagged" and backed.score > doubted.score + 0.3
    assert says_yes.asked == [reworded]
    # A sentence the passage holds word for word needs no judge.
    quiet = FixedJudge(0.03)
    verbatim = GroundednessGuard(judge=quiet).check("The largest file the window accepts is 4MB [1].", [UPLOADS])
    assert verbatim.sentences[0].level == "supported" and quiet.asked == []


def test_a_judge_model_given_directly_still_scores_the_uncited_passages():
    from bot.guard.groundedness import Model
    # The other passages are scored without the judge (by the fitted model without it),
    # also when the model with the judge is passed in (the benchmarks compare models so).
    guard = GroundednessGuard(model=Model.load(judge=True), judge=FixedJudge(0.97))
    other = "Logs > Rotation\nLogs are rotated daily."
    [sentence] = guard.check("Files over four megabytes are refused [2].", [other, UPLOADS]).sentences
    assert sentence.label == "supported" and sentence.best_passage == 2


def test_an_unsure_guard_marks_quietly_and_never_cuts(monkeypatch):
    from bot.guard.groundedness import Model
    model = Model.load()
    # Scores between the two cuts: not confirmed, low confidence; "drop" keeps such a sentence.
    guard = GroundednessGuard(policy="drop", model=model, threshold=0.99, flag_threshold=0.0)
    verdict = guard.check("Uploads may also be zipped folders [1].", [UPLOADS])
    [sentence] = verdict.sentences
    assert (sentence.level, sentence.confidence) == ("uncertain", "low")
    [finding] = guard.findings(verdict)
    assert finding.confidence == "low" and finding.severity == "low" and finding.action == "flagged"
    assert finding.message.startswith("not confirmed by the passages")
    text, _ = apply_policy("Uploads may also be zipped folders [1].", [finding])
    assert text == "Uploads may also be zipped folders [1]."


def test_training_runs_end_to_end_on_a_tiny_sample(tmp_path):
    from bot.guard.train import main
    (tmp_path / "halueval_qa").mkdir()
    (tmp_path / "squad2").mkdir()
    records = [{"knowledge": f"The bridge in Town{i} was built in {1900 + i} by the Smith company.",
                "question": "When?", "right_answer": f"It was built in {1900 + i}.",
                "hallucinated_answer": f"It was built in {1950 + i} by Jones."} for i in range(6)]
    (tmp_path / "halueval_qa" / "qa_sample.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    passages = [{"text": f"The river Alpha{i} is {10 + i} km long. It is not navigable. Boats of Beta{i} "
                         f"cannot pass the weir built in {1800 + i}."} for i in range(6)]
    (tmp_path / "squad2" / "passages.jsonl").write_text("\n".join(json.dumps(p) for p in passages))
    # Realistic claims: reworded supported ones, an added detail, a changed number; a test
    # part that training must not read (its labels are all wrong on purpose).
    claims = []
    for i in range(8):
        passage = f"Sensor{i} > Range\nThe sensor Probe{i} measures up to {20 + i} metres. It needs a 12 V supply."
        claims += [{"split": "train", "passage": passage, "claim": f"Probe{i} can measure as far as {20 + i} metres.",
                    "label": "supported"},
                   {"split": "train", "passage": passage, "claim": f"Probe{i} runs on a 12 V supply and weighs 3 kg.",
                    "label": "unsupported"},
                   {"split": "train", "passage": passage, "claim": f"Probe{i} measures up to {40 + i} metres.",
                    "label": "contradicted"},
                   {"split": "test", "passage": passage, "claim": f"Probe{i} measures up to {60 + i} metres.",
                    "label": "supported"}]
    realistic = tmp_path / "claims.jsonl"
    realistic.write_text("\n".join(json.dumps(c) for c in claims))
    out = tmp_path / "model.json"
    assert main(["--eval-dir", str(tmp_path), "--out", str(out), "--realistic", str(realistic),
                 "--squad-passages", "6", "--max-false-alarms", "0.1"]) == 0
    model = json.loads(out.read_text())
    assert set(model["weights"]) == {"bias", "lexical", "has_missing", "missing_share", "conflict"}
    assert model["data"]["realistic claims (train part)"] == 24          # the test part is never read
    assert model["train_balanced_accuracy"] > 0.8 and model["data"]["examples"] > 36
    # Precision first: warnings need a lower score than a quiet note, and fall on few correct claims.
    assert model["flag_threshold"] <= model["threshold"] and model["train_false_alarms_flagged"] <= 0.1
    from bot.guard.groundedness import Model
    loaded = Model.load(out)
    assert (loaded.threshold, loaded.flag_threshold) == (model["threshold"], model["flag_threshold"])


def test_the_judges_answers_are_computed_once_and_cached(tmp_path):
    from bot.guard.train import judged

    class CountingJudge:
        calls = 0

        def backed(self, claim, passages):
            CountingJudge.calls += 1
            return 0.9 if claim in passages[0] else 0.1

    pairs = [("Backups run at night.", "Backups run at night. They are kept."), ("It is blue.", "It is red.")]
    cache = tmp_path / "cache.jsonl"
    assert judged(pairs, CountingJudge(), cache) == [0.9, 0.1]
    assert judged(pairs, CountingJudge(), cache) == [0.9, 0.1] and CountingJudge.calls == 2


def test_cross_encoder_trains_saves_and_scores_on_a_tiny_sample(tmp_path):
    from bot.guard.claim_encoder import ClaimEncoder
    from bot.guard.train import train_encoder
    data = [(f"The bridge opened in {1900 + i}.", f"The bridge opened in {1900 + i} after years of work.", 1)
            for i in range(4)] + \
           [(f"The bridge opened in {1950 + i}.", f"The bridge opened in {1900 + i} after years of work.", 0)
            for i in range(4)]
    out = tmp_path / "encoder.safetensors"
    train_encoder(data, out, epochs=1, batch=4, max_tokens=64)
    assert 0 < out.stat().st_size < 20_000_000          # only the trained layers, in fp16
    scores = ClaimEncoder(out).score([(c, p) for c, p, _ in data[:2]])
    assert len(scores) == 2 and all(0.0 <= s <= 1.0 for s in scores)


def test_negation_is_read_where_it_applies():
    source = ["At the time he was not yet known, and his arrest was not covered in any newspapers."]
    assert check("His arrest was covered in newspapers.", source).conflicts
    # A negation elsewhere in the passage sentence is no contradiction.
    assert not check("The tool is fast.", ["The tool is fast, but it is not free."]).conflicts
    # Inflections match: "ended" restates "ending".
    assert check("The captive import policy ended.", ["Later they made their own, ending their captive import policy."]).ok
