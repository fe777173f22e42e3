"""The LangChain retriever against LangChain's own standard tests (langchain-tests), built
from plain parameters as a user's chain builds it, with the real bundled embedder."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_tests.integration_tests import RetrieversIntegrationTests

from bot.lc_retriever import DocentRetriever

PAGES = {
    "keys.md": "# API keys\n\nRotate API keys from the admin console. Old keys stop working after 24 hours.\n",
    "backups.md": "# Backups\n\nBackups run nightly at 02:00 and are kept for 30 days.\n",
    "restore.md": "# Restore\n\nTo restore a backup, stop the service and run docent-restore.\n",
    "install.md": "# Install\n\nRun the installer with sudo. It needs 2 GB of disk.\n",
    "quotas.md": "# Quotas\n\nEach team may store 5 TB. Ask the storage team to raise a quota.\n",
    "tokens.md": "# Tokens\n\nPersonal access tokens expire after 90 days and can be revoked at any time.\n",
}


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A collection ingested once, with the settings a user would have (test profile)."""
    from docent.settings import load_settings
    from ingest.pipeline import Ingestor
    root = tmp_path_factory.mktemp("lc")
    folder = root / "docs"
    folder.mkdir()
    for name, text in PAGES.items():
        (folder / name).write_text(text)
    settings = load_settings(profile="test", env={}).with_values("paths", home=str(root / "home"))
    Ingestor(settings).ingest([folder], collection="handbook")
    return root / "home"


class TestDocentRetrieverStandard(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _home(self, home):
        type(self).home_dir = home

    @property
    def retriever_constructor(self):
        return DocentRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"collection": "handbook", "home": str(self.home_dir), "profile": "test", "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "how long are backups kept"


def test_k_at_call_time_overrides_the_constructor(home):
    retriever = DocentRetriever(collection="handbook", home=str(home), profile="test", k=1)
    assert len(retriever.invoke("backups", k=4)) == 4
    assert len(retriever.invoke("backups")) == 1
    assert len(retriever.invoke("backups", k=50)) == len(PAGES)       # fewer only when there are fewer


def test_batch_and_gather_across_threads_give_the_single_answers(home):
    retriever = DocentRetriever(collection="handbook", home=str(home), profile="test", k=2)
    questions = ["rotate API keys", "how long are backups kept", "restore a backup", "disk needed to install",
                 "team storage quota", "token expiry"]
    one_by_one = [[d.page_content for d in retriever.invoke(q)] for q in questions]
    for _ in range(3):
        batched = retriever.batch(questions, config={"max_concurrency": 6})
        assert [[d.page_content for d in docs] for docs in batched] == one_by_one

        async def gather():
            return await asyncio.gather(*(retriever.ainvoke(q) for q in questions))
        assert [[d.page_content for d in docs] for docs in asyncio.run(gather())] == one_by_one
    assert all(isinstance(d, Document) and d.metadata["source"].endswith(".md") for d in batched[0])


def test_merged_neighbours_still_give_k_documents(settings, fake_embedder, tmp_path):
    """A long page whose chunks sit next to each other: docent merges neighbours into one
    passage, and the LangChain retriever takes further chunks so k documents come back."""
    from ingest.pipeline import Ingestor
    folder = tmp_path / "long"
    folder.mkdir()
    (folder / "manual.md").write_text("# Manual\n\n" + "\n\n".join(
        f"Step {i}: the backup agent copies volume {i} to the vault and checks its checksum." for i in range(30)))
    Ingestor(settings, embedder=fake_embedder).ingest([folder], collection="long")
    retriever = DocentRetriever.from_settings(settings.with_values("retrieval", min_score=0.0), collection="long",
                                              k=3, embedder=fake_embedder)
    plain = retriever.retriever.retrieve("backup agent volume checksum", "long", k=3)
    assert len(plain.passages) < 3                       # docent's own answer path merges
    docs = retriever.invoke("backup agent volume checksum")
    assert len(docs) == 3 and any(len(d.metadata["chunk_ids"]) > 1 for d in docs)
