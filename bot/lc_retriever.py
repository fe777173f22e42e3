"""docent's retrieval as a LangChain retriever, to plug a docent collection into your own
chains:

    from bot.lc_retriever import DocentRetriever
    retriever = DocentRetriever(collection="default", k=4)   # settings as the CLI reads them
    docs = retriever.invoke("rotate API keys")               # list[langchain_core.documents.Document]
    docs = retriever.invoke("rotate API keys", k=8)          # k at call time
    docs = await retriever.ainvoke("rotate API keys")
    retriever.batch(["...", "..."])                          # safe across threads

It keeps LangChain's contract: k documents (fewer only when the collection holds fewer;
neighbouring chunks docent merges into one passage do not shrink the count). Each
Document's metadata holds source, page, heading, score and chunk_ids (more than one when
neighbouring chunks were merged), and link (a crawled page at its heading) and commit (a
git file's) where the file has them. page_content is masked by the collection's leak policy
(secrets by default), as docent shows passages; `mask=False` gives the text as stored.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field, PrivateAttr


class DocentRetriever(BaseRetriever):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    collection: str | None = None  # None: settings' ingest.collection
    k: int = Field(default=4, ge=1)
    mode: str | None = None        # hybrid / dense / keyword; None: settings' retrieval.mode
    mask: bool = True              # secrets / personal data masked as the leak policy says
    home: str | None = None        # where collections live; None: as the settings say
    settings_file: str | None = None
    profile: str | None = None
    retriever: Any = None          # a bot.retrieval.Retriever; built from the above when None
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def from_settings(cls, settings, collection: str | None = None, k: int = 4, home=None, embedder=None) -> "DocentRetriever":
        from bot.builder import Components
        return cls(retriever=Components(settings, home, embedder=embedder).retriever, collection=collection, k=k)

    def _docent(self):
        """The docent Retriever, built once (settings loaded and validated as the CLI does)."""
        with self._lock:
            if self.retriever is None:
                from bot.builder import Components
                from docent.settings import load_settings
                self.retriever = Components(load_settings(self.settings_file, self.profile), self.home).retriever
            return self.retriever

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                k: int | None = None, **kwargs: Any) -> list[Document]:
        from bot.guard.leaks import LeakScanner
        retriever = self._docent()
        want = k if k is not None else self.k
        result = retriever.retrieve(query, self.collection, k=want, mode=self.mode, fill=True)
        passages = result.passages
        if self.mask:
            passages = LeakScanner(retriever.settings.leaks_for(self.collection)).shown(passages)
        return [Document(page_content=p.text, metadata={
            "source": p.source, "page": p.page, "heading": p.heading, "score": p.score,
            "chunk_ids": list(p.chunk_ids),
            **({"link": p.link} if p.link else {}), **({"commit": p.revision} if p.revision else {})})
            for p in passages]

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
                                       k: int | None = None, **kwargs: Any) -> list[Document]:
        # The search is CPU work on numpy, ONNX Runtime and SQLite (which release the GIL):
        # it runs in a worker thread so the event loop stays free; readers are thread-safe.
        return await asyncio.to_thread(self._get_relevant_documents, query,
                                       run_manager=run_manager.get_sync(), k=k, **kwargs)
