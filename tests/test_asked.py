"""Does the answer give what was asked (bot/steps/asked.py): a number asked and none
given, the opposite action answered, a name no document mentions."""

from __future__ import annotations

import pytest

from bot.steps.asked import asks_quantity, mismatch, names, opposite_answered
from conftest import FakeGenerator


@pytest.mark.parametrize("question, asks", [
    ("How many core metric types do the Prometheus instrumentation libraries offer?", True),
    ("What is the default port of the Prometheus Pushgateway?", True),
    ("Which version of PostgreSQL added MERGE?", True),
    ("In what year was the library founded?", True),
    ("How much disk does the installer need?", True),
    ("What version control system does Debian use?", False),      # "version" names the system's kind
    ("How long does a checkpoint take?", False),                  # "until the WAL is synced" answers it
    ("What is the name of the law which imposed the speed limit?", False),
    ("Which port-forwarding tool does the guide recommend?", False),
    ("What causes the population of ctenophora to grow at an explosive rate?", False),
    ("What does the size of the WAL depend on?", False),
    ("What was the population in 2010?", True),
])
def test_which_questions_ask_for_a_number(question, asks):
    assert asks_quantity(question) is asks


def test_an_answer_without_the_number_asked_for_is_caught():
    question = "What is the default port of the Prometheus Pushgateway?"
    assert mismatch(question, "The Pushgateway never forgets series pushed to it [1].")
    assert mismatch(question, "The Pushgateway listens on port 9091 [1].") is None
    assert mismatch("How many core metric types are there?", "There are four core metric types [1].") is None
    assert mismatch("How many replicas are allowed?", "Any number of replicas may follow a primary [2].") is None
    assert mismatch("How many clicks does it take?", "Double-click the package [1].")     # "double-click": no count


def test_an_answer_about_adding_when_asked_about_removing_is_caught():
    question = "How do I remove a file from the index?"
    assert opposite_answered(question, "Use git add to add the file to the index [1].") == ("remove", "add")
    assert "remove" in mismatch(question, "Use git add to add the file to the index [1].")
    # The asked action in other words, or both named: it answers the question.
    assert opposite_answered(question, "Run git rm --cached on it [1].") is None
    assert opposite_answered(question, "Unlike git add, git rm --cached removes it from the index [1].") is None
    # A negation may answer the opposite ("set enabled to false" disables).
    assert opposite_answered("How do I disable the cache?", "Set cache_enabled to false [1].") is None
    assert opposite_answered("What is the default heap size?", "The maximum heap size is 4 GB [1].") == ("default", "maximum")
    assert opposite_answered("What is the maximum heap size?", "The heap defaults to 1 GB [1].") is None
    assert opposite_answered("How do I stop the server?", "Send SIGTERM to the process you started [1].") is None
    assert opposite_answered("How do I stop the server?", "Run docent serve to start it [1].") == ("stop", "start")


def test_names_are_the_questions_proper_nouns_and_acronyms():
    assert names("How do I enable Git LFS for large binary files?") == ["Git", "LFS"]
    assert names("Which AWS region hosts our production Prometheus cluster?") == ["AWS", "Prometheus"]
    # The first word of a sentence is capitalised whatever it is; "I" is no name.
    assert names("Where can I find the install guide? Tell me.") == []
    assert names("Is MySQL supported?") == ["MySQL"]


def test_a_question_naming_what_no_document_mentions_is_not_sent_to_the_model(make_answerer):
    gen = FakeGenerator(lambda m: "Run choco install docent [1].")
    answerer = make_answerer(gen)
    answer = answerer.ask("How do I install docent on Windows with Chocolatey?")
    assert answer.abstained and answer.abstain_reason == "unnamed" and gen.calls == []
    assert answer.text.startswith("The documents never mention “Chocolatey”")
    assert "The closest passages" in answer.text            # still listed, as for any abstention
    # Named in the documents (in any case, or as the start of a longer word): answered.
    assert not answerer.ask("How do I install docent on WINDOWS?").abstained
    assert not answerer.ask("How does the MSI wizard work on Win?").abstained
    off = make_answerer(gen, answer={"unnamed": False}).ask("How do I install docent on Windows with Chocolatey?")
    assert off.abstain_reason != "unnamed" and gen.calls


def test_a_name_only_in_documents_the_asker_may_not_read_counts_as_unmentioned(collection, fake_embedder, docs):
    from bot.retrieval import Retriever
    retriever = Retriever(collection, fake_embedder)

    class OnlyFaq:         # rights (bot/access/rights.py) that hide every file but the FAQ
        def hidden_rule(self, name):
            return lambda path: not path.endswith("faq.txt")

        def key(self, name):
            return "only-faq"

    assert retriever.mentions("Windows") and retriever.mentions("windows")
    assert not retriever.mentions("Windows", rights=OnlyFaq())
    assert retriever.mentions("Rotate", rights=OnlyFaq())
    assert not retriever.mentions("Chocolatey")


def test_an_answer_lacking_the_number_asked_falls_back_to_the_passages_sentences_or_abstains(make_answerer):
    # The model answers around the question; the passages' own sentence gives the number.
    gen = FakeGenerator(lambda m: "Backups are important for every installation [1].")
    answer = make_answerer(gen).ask("How many days are backups kept for?")
    assert not answer.abstained and answer.fallback == "extractive" and "30 days" in answer.text
    # Nothing in the passages gives one: abstain rather than answer without it.
    gen = FakeGenerator(lambda m: "Open the admin console and press Rotate [1].")
    answer = make_answerer(gen).ask("How many API keys can be active at once?")
    assert answer.abstained and answer.abstain_reason == "off_question"
    kept = make_answerer(gen, answer={"answers_asked": False}).ask("How many API keys can be active at once?")
    assert not kept.abstained


def test_an_answer_about_adding_when_asked_about_removing_is_withdrawn(make_answerer):
    gen = FakeGenerator(lambda m: "Use the apt repository and run apt install docent [1].")
    asked = make_answerer(gen, answer={"judge_answerable": 0.0}).ask("How do I remove docent on Linux?")
    assert asked.abstained and asked.abstain_reason == "off_question"
    assert "apt install" not in asked.text.split("closest passages")[0]
    assert not make_answerer(gen, answer={"judge_answerable": 0.0}).ask("How do I install docent on Linux?").abstained


def test_the_name_lookup_holds_under_concurrent_questions(make_answerer):
    # A server asks from several threads at once: each lookup reads the store on its own.
    from concurrent.futures import ThreadPoolExecutor
    answerer = make_answerer(FakeGenerator(lambda m: "Double-click the MSI package [1]."))
    questions = ["How do I install docent with Chocolatey?", "How do I install docent on Windows?"] * 8
    with ThreadPoolExecutor(max_workers=8) as pool:
        reasons = list(pool.map(lambda q: answerer.ask(q).abstain_reason, questions))
    assert reasons == ["unnamed", None] * 8


def test_days_months_and_generic_acronyms_are_not_names_to_look_up():
    # "Monday" is the value asked about (the documents may say Tuesdays); "REST API" is how
    # a person names what the documents may call the web API.
    assert names("Do deploys go out on Monday?") == []
    assert names("How do I call the REST API over HTTPS?") == []
    assert names("Does the Kafka connector speak JSON?") == ["Kafka"]


def test_a_misspelt_or_inflected_name_is_not_taken_for_one_the_documents_lack(make_answerer):
    gen = FakeGenerator(lambda m: "Double-click the MSI package and follow the wizard [1].")
    answer = make_answerer(gen).ask("How do I install docent on Windoes?")
    assert answer.abstain_reason != "unnamed" and not answer.abstained


def test_an_answer_the_guard_flags_whose_passages_lack_the_number_asked_abstains(make_answerer):
    # The model's number is not the passage's; the passages' own sentences give none either.
    gen = FakeGenerator(lambda m: "Double-click the MSI package 3 times and follow the wizard [1].")
    answer = make_answerer(gen).ask("How many times do I double-click the MSI package on Windows?")
    assert answer.abstained and answer.abstain_reason == "unsupported", answer.text
    assert "3 times" not in answer.text and answer.citations == []
