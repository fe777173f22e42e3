"""docent's retrieval as a LangChain retriever, to plug a docent collection into your own
chains:

    from bot.lc_retriever import DocentRetriever
    retriever = DocentRetriever.from_settings(load_settings(), collection="default", k=4)
    docs = retriever.invoke("rotate API keys")      # list[langchain_core.documents.Document]

Each Document's metadata holds source, page, heading, score and chunk_ids. page_content
is masked by the collection's leak policy (secrets by default), as docent shows passages;
`mask=False` gives the text as stored.
"""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict


class DocentRetriever(BaseRetriever):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Any                 # bot.retrieval.Retriever
    collection: str | None = None
    k: int = 4
    mode: str | None = None
    mask: bool = True              # secrets / personal data masked as the leak policy says

    @classmethod
    def from_settings(cls, settings, collection: str | None = None, k: int = 4, home=None, embedder=None) -> "DocentRetriever":
        from bot.retrieval import Retriever
        return cls(retriever=Retriever(settings, embedder, home=home), collection=collection, k=k)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        from bot.guard.leaks import LeakScanner
        result = self.retriever.retrieve(query, self.collection, k=self.k, mode=self.mode)
        passages = result.passages
        if self.mask:
            passages = LeakScanner(self.retriever.settings.leaks_for(self.collection)).shown(passages)
        return [Document(page_content=p.text, metadata={
            "source": p.source, "page": p.page, "heading": p.heading, "score": p.score,
            "chunk_ids": list(p.chunk_ids)}) for p in passages]
