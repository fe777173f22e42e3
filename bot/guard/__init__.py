"""Guard checks on answers: groundedness (bot/guard/groundedness.py) and the shared finding shape."""
