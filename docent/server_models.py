"""The request and response bodies of `docent serve` (pydantic: the OpenAPI page at /docs
documents them). The chat completion shapes follow OpenAI's, so its clients work
unchanged; docent's own fields ride in an extra `docent` object."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Refused(Exception):
    """An HTTP error, answered with OpenAI's error body."""

    def __init__(self, status: int, message: str, kind: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.headers = status, message, kind, headers or {}


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")       # name, tool fields...: accepted, unused
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list | None = None

    def text(self) -> str:
        """The message's text (a list of content parts: their text parts joined)."""
        if isinstance(self.content, list):
            return "".join(part.get("text", "") for part in self.content if isinstance(part, dict))
        return self.content or ""


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")       # temperature, max_tokens...: accepted, docent's settings rule
    model: str = Field(description="The collection to answer from (GET /v1/models lists yours).")
    messages: list[Message] = Field(min_length=1)
    stream: bool = False


class AskRequest(BaseModel):
    question: str
    collection: str | None = None
    history: list[tuple[str, str]] = Field(default_factory=list,
                                           description="Earlier (question, answer) pairs, for follow-ups.")


class RetrieveRequest(BaseModel):
    query: str
    collection: str | None = None
    k: int = Field(default=5, ge=1, le=100)


class UploadedFile(BaseModel):
    name: str = Field(description="The file's path in the collection, under its uploads folder.")
    action: str = Field(description="added, updated, unchanged, skipped or failed")
    chunks: int = 0
    reason: str = ""


class UploadResponse(BaseModel):
    collection: str
    files: list[UploadedFile]


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "docent"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def history_of(messages: list[Message]) -> tuple[str, list[tuple[str, str]]]:
    """The question (the last user message) and the (question, answer) pairs before it."""
    turns = [m for m in messages if m.role in ("user", "assistant")]
    if not turns or turns[-1].role != "user":
        raise ValueError("the last message must be the user's question")
    history, pending = [], None
    for message in turns[:-1]:
        if message.role == "user":
            pending = message.text()
        elif pending is not None:
            history.append((pending, message.text()))
            pending = None
    return turns[-1].text(), history


def error_body(message: str, kind: str) -> dict:
    """OpenAI's error shape, which its clients read."""
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}
