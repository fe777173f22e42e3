"""Answering: retrieval, generation, guard checks and the chat session (issues 4-6)."""
