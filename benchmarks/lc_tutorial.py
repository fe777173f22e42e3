"""The LangChain RAG tutorial's loading step, shared by the benchmarks that compare
docent with it: one loader per file type, no error handling beyond counting failures."""

from __future__ import annotations

from pathlib import Path


def load_documents(paths: list[Path]) -> tuple[list, list[str]]:
    """(LangChain Documents, "path: error" for each file the tutorial's loaders could not read)."""
    from langchain_community.document_loaders import BSHTMLLoader, PyPDFLoader, TextLoader
    documents, failed = [], []
    for path in paths:
        suffix = path.suffix.lower()
        try:
            if suffix in (".html", ".htm"):
                loader = BSHTMLLoader(str(path), open_encoding="utf-8")
            elif suffix == ".pdf":
                loader = PyPDFLoader(str(path))
            else:
                loader = TextLoader(str(path), autodetect_encoding=True)
            documents.extend(loader.load())
        except Exception as exc:  # the tutorial has no error handling; count what breaks
            failed.append(f"{path}: {type(exc).__name__}")
    return documents, failed
