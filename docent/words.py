"""The stop-word lists, in one place.

One base list of words that name nothing (articles, pronouns, auxiliaries, question
words), and for each use the words it adds or keeps. The uses differ on purpose, and
each was measured with its own list (changing one moves that use's figures):
- comparing a sentence with a passage (the guard, the fallback): the base;
- a question's topic words (does a passage name what is asked?): the base plus words
  that frame a question ("difference", "example", "default");
- the keyword query: the base plus request words ("please", "explain"), keeping modal
  and "use" words, which name things in documentation ("use", "may");
- agreement between two answers (evaluation): keeps "no" and "not", which tell answers
  apart;
- whether a generated question names its passage's subject (evaluation).
"""

from __future__ import annotations

STOP_WORDS = frozenset("""a an the of to in on for by with and or is are was were be been it its this that these
those as at from can may must should will would do does not no you your we our they their there here which what
when where who how use used using could might shall""".split())

# Pronouns, conjunctions and question words the base leaves out.
_FRAMING = frozenset("about did i if into me my so than them then us whom why".split())

QUESTION_STOP = STOP_WORDS | frozenset("""i me my did many much long often whom whose why get set make need want
way ways any some other default main difference differences differ purpose terms term kind kinds type types example
examples mean means meaning work works happen happens describe explain role reason reasons benefit benefits uses
usage possible best recommended common typical usually""".split())

KEYWORD_STOP = ((STOP_WORDS - frozenset("been here may might must shall they use used using".split()))
                | _FRAMING | frozenset("please tell explain show give yes".split()))

ANSWER_STOP = ((STOP_WORDS - frozenset("no not shall use used using".split()))
               | _FRAMING | frozenset("""being has have had he she his her all any some each per also just only very
over but such""".split()))

TOPIC_STOP = STOP_WORDS | _FRAMING | frozenset("""being has have had whose all any some each every also only just
but such more most other else one two get set yes doesn""".split())

# Words that open a question asking for something other than yes or no ("when can a counter
# go back to zero?"): an answer to one must name something the question does not.
OPEN_QUESTION = frozenset("what when where which who whom whose why how".split())
