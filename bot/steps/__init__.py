"""The answer pipeline as steps, each a small unit with typed input and output:

    condense (condense.py)      follow-up + history  -> standalone question
    retrieve (bot/retrieval.py) question             -> passages, best cosine
    gate     (gate.py)          question, passages   -> why to abstain before the model, or None
    prompt   (prompt.py)        question, passages   -> chat messages (as many passages as fit), grammar
    generate (generate.py)      messages             -> events while streaming, then Generated (raw text)
    finish   (finish.py)        raw text, passages   -> Answer: citations checked and re-pointed,
                                                        abstention recognised, extractive fallback
    guard    (guard.py)         Answer               -> groundedness findings (dropped sentences by policy)
    policy   (policy.py)        Answer               -> leak and restricted-text findings applied:
                                                        flag / redact / block (withhold)

bot/answer.py's Answerer runs them in that order (the order matters: spans are shifted
by each edit, a withheld answer drops the flags that quoted it). Types shared by all
steps are in result.py.
"""
