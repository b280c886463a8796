"""``analyze_sentiment``: for each item of a dialogue, did the seeker like it, dislike it, and have they seen it.

Which items: every item the seeker mentioned, and every item the recommender proposed (an item proposed and
never answered stays ``neutral`` / ``unknown``). Only the seeker's words count as evidence; the recommender's
words matter only as the question the seeker answers ("Have you seen X?" - "Nope").

**Rule path** (:class:`RuleSentiment`, no model, about 0.1 ms a turn). Each seeker turn is cut into clauses:
sentences, then contrast words ("I liked X *but* hated Y"). Titles are masked first, so that a title's own
words ("Love Actually", "Bad Moms", "Die Hard") and its punctuation ("Airplane!", "Mr. Rogers") are neither
cues nor clause breaks. Evidence about an item comes from

- the clause that mentions it, and the clauses right after it that mention no other item ("Seen Gladiator.
  Great movie"); in a clause with several items each cue goes to the nearest title;
- the seeker's reaction to a recommender turn that proposed it: the clauses of the next seeker turn before
  the seeker names any item ("I haven't yet. Is it good?", "not really my thing"), and a bare yes or no when
  the recommender asked "have you seen" or "do you like".

A clause's cues come from :class:`SentimentLexicon`: sentiment words, phrases that carry their own
negation ("not my thing", "couldn't get into", "I'll pass"), intentions ("I'll check it out": liked, not yet
seen), and the domain's consumption verbs for seen (:data:`CONSUMPTION_VERBS`: a movie is *seen* or
*watched*, a book *read*; "I read the book" says nothing about having seen the movie). A negator up to
``negation_window`` tokens before a cue flips it ("didn't really like", "never much a fan"). Questions carry
no opinion ("Is it good?"). An item's score is the sum of its cues; ``liked`` at or above
``like_threshold``, ``disliked`` at or below ``-dislike_threshold``.

**LLM path** (:class:`LLMSentiment`): the LLM reads the turns around the item's mentions and answers
``{"liked": "yes|no|unsure", "seen": "yes|no|unsure"}`` (JSON-schema constrained where the backend supports
it, and parsed strictly either way). An answer that does not parse, or a failed call, falls back to the rule
label for that item, counted per reason in :attr:`SentimentResult.fallbacks`.

Measured against ReDial's questionnaires in :mod:`convrec.agent.sentiment_eval`. The rule path is the default
(:class:`SentimentAnalyzer` without an LLM): on a seeded 100-item ReDial validation subset, half liked and
half not, it scored liked-vs-not macro-F1 0.65 where SmolLM2-135M, which called every item liked, scored 0.33.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from convrec.catalog.items import Catalog
from convrec.catalog.vocabulary import GENERIC, Vocabulary
from convrec.data.model import ContextView, Turn
from convrec.llm.errors import LLMError, LLMUnavailableError
from convrec.llm.types import LLM, ChatRequest

Liking = Literal["liked", "disliked", "neutral"]
SeenState = Literal["yes", "no", "unknown"]
DecidedBy = Literal["rule", "llm", "rule-fallback"]
EvidenceKind = Literal["mention", "follow-up", "reaction", "answer"]
Mentioner = Literal["seeker", "recommender", "unknown"]

# What "having consumed" an item is called per domain (Vocabulary.domain). Past forms say "seen"; the bare
# forms appear in intentions ("I want to watch it") and in "haven't seen", so both are listed.
CONSUMPTION_VERBS: dict[str, tuple[str, ...]] = {
    "movies": ("seen", "saw", "watched", "see", "watch", "watching", "viewed"),
    "books": ("read", "reading", "finished"),
    "items": ("seen", "saw", "watched", "see", "watch", "read", "used", "tried", "try", "use"),
}
PAST_FORMS: dict[str, tuple[str, ...]] = {
    "movies": ("seen", "saw", "watched", "viewed"),
    "books": ("read", "finished"),
    "items": ("seen", "saw", "watched", "read", "used", "tried"),
}


# ---------------------------------------------------------------------------------------------- the output
class Evidence(BaseModel):
    """One piece of what the seeker said about an item: the clause (titles as written), where it is, and
    which cues fired in it (``+like``, ``-hated``, ``seen:no``...)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    turn_index: int
    kind: EvidenceKind
    text: str
    cues: tuple[str, ...] = ()


class ItemSentiment(BaseModel):
    """The seeker's attitude to one item. ``score`` is the rule path's sum of cues (> 0 liked);
    ``confidence`` in [0, 1] grows with it (0: nothing was said); ``decided_by`` says which path set
    ``label`` and ``seen``, and ``fallback_reason`` why the LLM's answer was not used."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    item_id: str
    label: Liking
    seen: SeenState
    score: float
    confidence: float = Field(ge=0.0, le=1.0)
    first_mentioned_by: Mentioner
    evidence: tuple[Evidence, ...] = ()
    decided_by: DecidedBy = "rule"
    fallback_reason: str | None = None


class SentimentResult(BaseModel):
    """Every item of the dialogue, in order of first mention, and what the LLM path cost and failed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    items: tuple[ItemSentiment, ...]
    llm_calls: int = 0
    fallbacks: dict[str, int] = Field(default_factory=dict)

    def get(self, item_id: str) -> ItemSentiment | None:
        return next((item for item in self.items if item.item_id == item_id), None)

    def with_label(self, label: Liking) -> list[str]:
        return [item.item_id for item in self.items if item.label == label]

    def with_seen(self, seen: SeenState) -> list[str]:
        return [item.item_id for item in self.items if item.seen == seen]


# ------------------------------------------------------------------------------------------- the lexicon
class SentimentLexicon(BaseModel):
    """The words and phrases of the rule path. Phrases are regular expressions over a clause's normalised
    tokens (lower case, apostrophes dropped: "didn't" -> "didnt", "I'll" -> "ill"), joined by spaces.
    Chosen by reading ReDial's train dialogues and checked on valid (never on test)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    positive: frozenset[str] = frozenset({
        "liked", "love", "loved", "loves", "loving", "enjoy", "enjoyed", "enjoys", "adore", "adored", "favorite",
        "favourite", "favorites", "favourites", "fav", "fave", "great", "good", "awesome", "amazing", "excellent",
        "fantastic", "wonderful", "brilliant", "best", "classic", "fun", "funny", "hilarious", "cool", "nice",
        "perfect", "beautiful", "masterpiece", "incredible", "epic", "cute", "sweet", "interesting",
        "intriguing", "entertaining", "fan", "interested", "gorgeous", "stunning", "superb", "outstanding",
        "terrific", "fabulous", "lovely", "enjoyable", "underrated", "legendary", "iconic", "phenomenal",
        "awsome", "greatest", "wow", "excited", "exciting", "appreciate", "prefer", "preferred",
    })
    # Said of these, a cue is about a kind of item ("I hate horror films"), not about a title.
    categories: frozenset[str] = frozenset({
        "movies", "films", "books", "novels", "shows", "series", "stuff", "genre", "genres", "kind", "kinds",
        "type", "types", "things", "comedies", "dramas", "horrors", "thrillers", "musicals", "westerns",
        "cartoons", "documentaries", "flicks", "sequels", "remakes", "ones",
    })
    # Praise whose negation is mild ("not the greatest", "wasn't my favorite"): -0.5, not -1.
    superlatives: frozenset[str] = frozenset({"great", "greatest", "best", "favorite", "favourite", "amazing",
                                              "fav", "fave", "masterpiece", "awesome", "perfect", "excellent"})
    weak_positive: frozenset[str] = frozenset({"ok", "okay", "decent", "alright", "fine", "solid", "pretty"})
    negative: frozenset[str] = frozenset({
        "hate", "hated", "hates", "dislike", "disliked", "dislikes", "boring", "bored", "bad", "awful",
        "terrible", "horrible", "worst", "worse", "meh", "overrated", "stupid", "dumb", "lame", "corny",
        "annoying", "disappointing", "disappointed", "disappointment", "sucked", "sucks", "garbage", "trash",
        "confusing", "gross", "ridiculous", "dull", "mediocre", "cheesy", "silly", "eh", "nah", "skip",
        "pass", "weird", "strange", "dreadful", "painful", "unwatchable", "waste", "creepy", "letdown",
    })
    # "like" is also a preposition ("movies like Alien"): a verb only after one of these words.
    like_subjects: frozenset[str] = frozenset({
        "i", "we", "he", "she", "they", "you", "really", "also", "do", "did", "dont", "didnt", "doesnt", "would",
        "id", "kinda", "still", "just", "definitely", "totally", "always", "both", "all", "usually", "actually",
        "generally", "mostly", "to", "might", "may", "will", "ill", "should", "wouldnt", "not", "never",
        "truly", "sure", "probably", "too", "especially", "certainly", "honestly",
    })
    negators: frozenset[str] = frozenset({
        "not", "never", "dont", "didnt", "doesnt", "isnt", "wasnt", "arent", "werent", "havent", "hasnt",
        "hadnt", "wont", "wouldnt", "cant", "couldnt", "shouldnt", "aint", "nor", "neither", "hardly",
        "barely", "without", "no", "nothing", "cannot", "didn", "don", "doesn", "wasn", "isn", "haven",
        "couldn", "nobody", "none",
    })
    # Phrases that carry their own negation or polarity: matched before the words, never flipped again.
    negative_phrases: tuple[str, ...] = (
        r"not (really |quite |exactly |at all )?(my|our|his|her) (thing|style|type|cup of tea|taste|genre|kind)",
        r"not (really )?(for me|for us|for him|for her|my thing)",
        r"(not|never|wasnt|isnt|werent|arent|dont|didnt|doesnt) (really |much |very |too |that |so |a |the |"
        r"quite |all that |huge |big |biggest |such )*(fan|fans|into|keen|fond|crazy|interested|impressed)",
        r"(cant|couldnt|cannot|never|didnt|dont|not) (really |quite |ever |even )*(get|got|getting) into",
        r"(didnt|dont|doesnt|not|never|wouldnt) (really |much |too |that |so )*care( much| too much| that much|"
        r"| for| about)*",
        r"(didnt|doesnt|wont|dont|did not) (quite |really |exactly )?do (it|much|anything) for (me|us|him|her)",
        r"(ill|i will|im going to|im gonna|gonna|ill have to|going to|i think ill|ill probably) (have to )?pass",
        r"pass on",
        r"(not|never|isnt|wasnt|arent|dont|didnt)( \w+){0,3} (fan|fans)", r"no (interest|thanks|thank you)", r"not so much", r"not sure", r"not for",
        r"fell asleep", r"fall asleep", r"waste of (time|money)", r"too (much|violent|gory|gross|scary|slow|long|"
        r"dark|sad|cheesy|silly|childish|weird|depressing|bloody|graphic|intense|old|predictable|dumb|corny)",
        r"(i|we) (will|would|d) (never|not) (watch|see|read)", r"not (as )?good", r"not great",
        r"not (that |very |really )?(good|great|funny|scary|interesting|impressed)",
        r"(didnt|did not|doesnt|dont) (really )?(like|enjoy|love)",
        r"(didnt|did not|doesnt|wasnt|isnt) (really )?(work|hold up|age well)",
        r"turned (it )?off", r"walked out", r"stopped watching", r"couldnt finish", r"(hard|tough) to (watch|"
        r"sit through|get through|follow)",
        r"scared (me|of)", r"creeped me out", r"freaked me out", r"let (me|us|him|her) down", r"a let down",
    )
    positive_phrases: tuple[str, ...] = (
        r"check (it|that|this|them|those|these|him|her)?( one| ones| out| movie| book)* out", r"check out",
        r"add (it|that|this|them|those|these)( one| ones)? to (my|the) (list|queue|watchlist)",
        r"(on|to) my (list|watch list|watchlist|queue|to read list|reading list)",
        r"(sound|sounds|sounded|looks|look|looked) (really |so |very |pretty |super )?(good|great|interesting|fun|"
        r"cool|awesome|amazing|perfect|promising|nice|intriguing|like a good|like something|like fun)",
        r"(cant|cannot) wait", r"not bad", r"not too bad", r"cant go wrong", r"must see", r"must watch",
        r"one of (my|the) (all time )?(favorites|favourites|faves|best)", r"give (it|that|them|those) a (try|shot|go)",
        r"good (one|choice|pick|suggestion|idea|call)", r"great (one|choice|pick|suggestion|idea|call)",
        r"(thats|that is|it is|its) (a )?(good|great) (one|choice|pick|suggestion)",
        r"(i|we) (really |definitely |do |still )*(like|liked|love|loved|enjoy|enjoyed)",
    )
    # An intention to watch or read: the seeker likes the suggestion and has not seen it yet.
    intentions: tuple[str, ...] = (
        r"(will|ill|gonna|going to|want to|wanna|would like to|id like to|need to|have to|might|may|should|"
        r"plan to|planning to|hope to|cant wait to|got to|gotta|definitely|must) (\w+ ){0,2}"
        r"(watch|see|check|try|give|read|look (more )?into|look for|look up|add|rent|download|stream|buy|get|pick)",
        r"check (it|that|this|them|those|these)?( one| ones| out| movie| book)* out", r"check out",
        r"add (it|that|this|them|those|these)( one| ones)? to", r"(on|to) my (list|watchlist|queue)",
        r"(sound|sounds|looks|look) (really |so |very |pretty |super )?(good|great|interesting|fun|cool|awesome|"
        r"amazing|promising|intriguing|like a good)",
        r"(cant|cannot) wait", r"give (it|that|them|those) a (try|shot|go)", r"dying to",
        r"(excited|interested) (for|about|to|in)", r"(will|ill) (\w+ )?(have|keep) (it|that|them|those) in mind",
    )
    # Opinions that judge an item as known ("loved it", "boring"), unlike wishes ("interested"): they suggest
    # the seeker has seen it.
    unjudged: frozenset[str] = frozenset({"interested", "interesting", "intriguing", "excited", "exciting", "pass",
                                          "skip", "fan", "appreciate", "wow", "cool", "nice", "sure"})
    contrast: tuple[str, ...] = ("but", "though", "although", "however", "except", "whereas", "otherwise")
    # "Thank you", "have a good day": polite, not an opinion of any item.
    formulas: tuple[str, ...] = (
        r"(have|has|had) a (good|great|nice|wonderful|fantastic|lovely|awesome|fun|blessed|happy) "
        r"(day|night|evening|weekend|one|time|afternoon|morning|week|holiday|holidays|christmas|new year)",
        r"(good|great|nice|lovely) (morning|afternoon|evening|night|bye|luck|day|talking|chatting|chat)",
        r"(nice|good|great|pleasure) (to )?(talk|talking|chat|chatting|meet|meeting) (to|with) you",
        r"you (too|as well)", r"(good|great|nice) (bye|talking)", r"(thank|thanks) (you )?(so much|a lot|again)?",
        r"no problem", r"you are welcome", r"youre welcome", r"enjoy (your|the) (day|night|evening|weekend|movie)",
        r"(im|i am|doing) (good|great|fine|well|ok|okay)", r"(good|great|fine) (thanks|thank you|and you)",
        r"how are you", r"hope you enjoy",
        # comparisons speak of the title after them (see RuleSentiment._share), not of the whole clause
        r"(way |much |so much |far |a lot )?(better|more) than", r"rather than", r"instead of",
    )
    yes_answers: tuple[str, ...] = (
        r"yes", r"yeah", r"yep", r"yup", r"yea", r"ya", r"sure", r"absolutely", r"definitely", r"of course",
        r"i (have|did|do)(?! not| never| no)", r"(ive|i have) (seen|watched|read) (it|that|them|those|this|both|all)",
        r"(seen|watched|read|saw) (it|that|them|those|this|both|all)", r"indeed", r"uh huh", r"totally",
    )
    no_answers: tuple[str, ...] = (
        r"no", r"nope", r"nah", r"not yet", r"i (have not|havent|did not|didnt|dont|do not)\b", r"never",
        r"not really", r"i (have|had) not", r"havent", r"didnt", r"negative",
    )


# The recommender asks whether the seeker has seen it, or whether they like it / want it.
SEEN_QUESTION = (r"(have|did|do|had) you (ever |already |by chance |happen to |get to |gotten to |got to )?"
                 r"({verbs}|heard of|hear of|come across)|ever ({verbs})|you ({verbs}) (it|that|this|them|those)|"
                 r"familiar with|(seen|watched|read) (it|that|this|them|those|these)")
LIKE_QUESTION = (r"(do|did|would|will|could) you (like|love|enjoy|want|prefer|be interested|consider)|"
                 r"are you (a fan|into|interested)|how about|what about|you (might|may|would|will|should) "
                 r"(like|love|enjoy|try|check|want)|(try|recommend|suggest)|interested in|sound good|"
                 r"(is|was) (it|that) (something|one)")

# "X is (way) better than Y", "X more than Y": the title before the comparison wins it.
COMPARISON = re.compile(r"(^|\s)(better|more) than \u27e6\d+\u27e7")
# A word right before a title that turns the seeker against that title only ("but not X", "better than X").
ITEM_NEGATORS = frozenset({"not", "except", "besides", "beside", "than", "nor", "instead of"})
# Words that open a new clause or subject: a negator before them does not reach the cue after them.
NEGATION_BARRIERS = frozenset({"why", "what", "how", "that", "when", "because", "whether", "which", "who", "and",
                               "so"})
# A new subject also ends a negator's reach ("I haven't | I will check it out"), unless a verb of opinion
# carries the negation over it ("I don't think I'll watch it", "not sure if I'd like it").
SUBJECTS = frozenset({"i", "ill", "im", "ive", "id", "we", "he", "she", "they", "it", "its", "if"})
CARRIERS = frozenset({"think", "sure", "know", "guess", "believe", "say", "see", "expect"})
PLACEHOLDER = re.compile(r"\u27e6(\d+)\u27e7")  # a masked title: ⟦n⟧
SHORT_TITLE = 4
_TOKEN = re.compile(r"\u27e6\d+\u27e7|[a-z0-9]+(?:'[a-z]+)*|,")
_SENTENCE_END = re.compile(r"(\.{2,}|[.!?;:]+|\n|\u2026)")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u00b4": "'"})


class RuleOptions(BaseModel):
    """The thresholds and weights of the rule path. The defaults of ``dislike_threshold`` and ``judged_seen``
    are what ``sentiment_eval`` chose on ReDial's validation split (macro-F1); the others were set by hand."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    like_threshold: float = Field(0.5, gt=0.0, description="score at or above which an item is liked")
    dislike_threshold: float = Field(0.5, gt=0.0, description="score at or below minus this: disliked")
    negation_window: int = Field(3, ge=0, le=6, description="tokens before a cue a negator may stand")
    follow_up_weight: float = Field(1.0, ge=0.0, description="weight of the item-less clauses after a mention")
    reaction_weight: float = Field(1.0, ge=0.0, description="weight of the seeker's reaction to a proposal")
    judged_seen: float = Field(0.0, ge=0.0, description="seen evidence of an opinion word ('loved', 'boring'); "
                               "a seen cue ('I've seen it') counts 1")


# ------------------------------------------------------------------------------------------------ clauses
@dataclass
class Clause:
    """One clause of a seeker turn: its tokens (titles masked as ⟦n⟧), the items it names (by the number n of
    the mask), whether it ends a question, and the text as written, for evidence."""

    tokens: list[str]
    items: list[str]
    item_at: dict[int, str]  # token position -> item id
    question: bool
    text: str

    @property
    def joined(self) -> str:
        return " ".join(self.tokens)


@dataclass
class TurnClauses:
    clauses: list[Clause]
    unplaced: list[str] = field(default_factory=list)  # items of the turn whose title was not found in it


class ClauseReader:
    """Cuts a turn into clauses, with its items' titles found in the text and masked."""

    def __init__(self, catalog: Catalog, contrast: Sequence[str]):
        self.catalog = catalog
        self._contrast = re.compile(r"(?<!\w)(" + "|".join(contrast) + r")(?!\w)", re.IGNORECASE)

    def title_variants(self, item_id: str) -> list[str]:
        if item_id not in self.catalog:
            return []
        item = self.catalog.get(item_id)
        title = " ".join(item.title.split())
        variants = [item.display_title, title]
        for article in ("the ", "a ", "an "):
            if title.lower().startswith(article) and len(title) > len(article) + 3:
                variants.append(title[len(article):])
        return [v for v in dict.fromkeys(variants) if v.strip()]

    def mask(self, turn: Turn) -> tuple[str, list[str], list[str], list[str]]:
        """The text with each found title replaced by ⟦n⟧, the items by n, how each appeared, and the items
        whose title is not in the text (linked by other means, e.g. the chat's fuzzy linker)."""
        text = turn.text.translate(_APOSTROPHES)
        spans: list[tuple[int, int, str]] = []
        for item_id in turn.items:
            for variant in sorted(self.title_variants(item_id), key=len, reverse=True):
                # short titles ("Up", "It", "Her") are also words: only as capitalised as in the title
                flags = 0 if len(variant) <= SHORT_TITLE else re.IGNORECASE
                pattern = re.compile(r"(?<!\w)" + re.escape(" ".join(variant.split())).replace(r"\ ", r"\s+")
                                     + r"(?!\w)", flags)
                found = [m for m in pattern.finditer(text)
                         if not any(m.start() < end and start < m.end() for start, end, _ in spans)]
                if found:
                    spans.extend((m.start(), m.end(), item_id) for m in found)
                    break
        spans.sort()
        masked, items, shown, last = [], [], [], 0
        for start, end, item_id in spans:
            masked.append(text[last:start])
            masked.append(f" \u27e6{len(items)}\u27e7 ")
            items.append(item_id)
            shown.append(text[start:end])
            last = end
        masked.append(text[last:])
        placed = set(items)
        return "".join(masked), items, shown, [i for i in turn.items if i not in placed]

    def read(self, turn: Turn) -> TurnClauses:
        masked, items, shown, unplaced = self.mask(turn)
        clauses: list[Clause] = []
        pieces = _SENTENCE_END.split(masked)
        # split() keeps the separators at odd positions: a sentence is followed by its end mark
        for index in range(0, len(pieces), 2):
            sentence = pieces[index]
            end = pieces[index + 1] if index + 1 < len(pieces) else ""
            question = "?" in end
            for part in self._contrast_parts(sentence):
                clause = self._clause(part, items, shown, question)
                if clause is not None:
                    clauses.append(clause)
        return TurnClauses(clauses, unplaced)

    def _contrast_parts(self, sentence: str) -> list[str]:
        cuts = [m.start() for m in self._contrast.finditer(sentence)]
        bounds = [0, *cuts, len(sentence)]
        return [sentence[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if sentence[a:b].strip()]

    @staticmethod
    def _clause(part: str, items: list[str], shown: list[str], question: bool) -> Clause | None:
        tokens = [token.replace("'", "") for token in _TOKEN.findall(part.lower())]
        if not tokens:
            return None
        item_at: dict[int, str] = {}
        clause_items: list[str] = []
        for position, token in enumerate(tokens):
            match = PLACEHOLDER.fullmatch(token)
            if match:
                item_id = items[int(match.group(1))]
                item_at[position] = item_id
                if item_id not in clause_items:
                    clause_items.append(item_id)
        text = PLACEHOLDER.sub(lambda m: shown[int(m.group(1))], " ".join(part.split()))
        return Clause(tokens, clause_items, item_at, question, text)


# ------------------------------------------------------------------------------------------------- cues
@dataclass(frozen=True)
class Cue:
    name: str  # "+loved", "-not my thing", "seen:yes"...
    polarity: float  # > 0 liked, < 0 disliked, 0 a seen cue only
    seen: float  # > 0 seen, < 0 not seen
    position: int  # token index where it starts
    intention: bool = False  # "I'll check it out": about what comes next, not what was just said


class CueReader:
    """Finds the cues of one clause with the lexicon, the domain's verbs and the negation rule."""

    def __init__(self, lexicon: SentimentLexicon, vocabulary: Vocabulary, options: RuleOptions):
        self.lexicon, self.options = lexicon, options
        verbs = CONSUMPTION_VERBS.get(vocabulary.domain, CONSUMPTION_VERBS["items"])
        past = PAST_FORMS.get(vocabulary.domain, PAST_FORMS["items"])
        verb_group = "|".join(verbs)
        self.verbs = frozenset(verbs)
        self.past = frozenset(past)
        self._negative = _phrases(lexicon.negative_phrases)
        self._positive = _phrases(lexicon.positive_phrases)
        self._intentions = _phrases(lexicon.intentions)
        self._formulas = _phrases(lexicon.formulas)
        self._not_seen = re.compile(
            r"(?<!\S)((havent|hasnt|hadnt|have not|has not|had not|never|not|didnt|did not|yet to|not yet)"
            r"( (?!(?:i|we|he|she|they|you|but)(?!\S))\w+){0,2} (" + verb_group + r"|heard of|heard about|heard)"
            r"|never heard|new to me|not familiar|unfamiliar)(?!\S)")
        self._seen_long_ago = re.compile(r"(?<!\S)(in (years|ages|a while|a long time|forever|so long)|"
                                         r"since i was|as a (kid|child)|when i was)(?!\S)")
        self._seen_again = re.compile(r"(?<!\S)(re ?watch\w*|re ?read\w*|again|(many|million|hundred|few|"
                                      r"couple|several|\d+) times|all of them|every time|growing up|"
                                      r"in (the )?(theaters?|theatres?|cinema))(?!\S)")
        self.seen_question = re.compile(r"(?<!\S)(" + SEEN_QUESTION.format(verbs=verb_group) + r")(?!\S)")
        self.like_question = re.compile(r"(?<!\S)(" + LIKE_QUESTION + r")(?!\S)")
        self._yes = re.compile(r"^(" + "|".join(lexicon.yes_answers) + r")(?!\S)")
        self._no = re.compile(r"^(" + "|".join(lexicon.no_answers) + r")(?!\S)")

    def cues(self, clause: Clause) -> list[Cue]:
        tokens = clause.tokens
        text = _Joined(tokens)
        used = [False] * len(tokens)
        found: list[Cue] = []
        for pattern in (*self._formulas, self._not_seen):
            for start, end in text.spans(pattern):
                _mark(used, start, end)
        if not clause.question:
            found += self._phrase_cues(text, used)
            found += self._word_cues(tokens, used)
        found += self._seen_cues(clause, text.joined)
        return found

    def _phrase_cues(self, text: _Joined, used: list[bool]) -> list[Cue]:
        cues = []
        tokens = text.tokens
        for pattern in self._negative:
            for start, end in text.spans(pattern):
                if not any(used[start:end]):
                    cues.append(Cue("-" + " ".join(tokens[start:end]), -1.0, 0.0, start))
                    _mark(used, start, end)
        for pattern in self._intentions:
            for start, end in text.spans(pattern):
                if not any(used[start:end]):
                    flip = self._negated(tokens, start, used, window=self.options.negation_window + 1)
                    polarity = -1.0 if flip else 1.0
                    cues.append(Cue(("-not " if flip else "+") + " ".join(tokens[start:end]), polarity,
                                    0.0 if flip else -1.0, start, intention=True))
                    _mark(used, start, end)
        for pattern in self._positive:
            for start, end in text.spans(pattern):
                if not any(used[start:end]):
                    flip = self._negated(tokens, start, used)
                    cues.append(Cue(("-not " if flip else "+") + " ".join(tokens[start:end]),
                                    -1.0 if flip else 1.0, 0.0, start))
                    _mark(used, start, end)
        return cues

    def _word_cues(self, tokens: list[str], used: list[bool]) -> list[Cue]:
        cues = []
        lexicon = self.lexicon
        for position, token in enumerate(tokens):
            if used[position]:
                continue
            if token in ("like", "likes"):
                before = tokens[position - 1] if position else ""
                polarity = 1.0 if before in lexicon.like_subjects else 0.0
            elif token in lexicon.positive:
                polarity = 1.0
            elif token in lexicon.weak_positive:
                polarity = 0.5
            elif token in lexicon.negative:
                polarity = -1.0
            else:
                continue
            if polarity == 0.0:
                continue
            if any(word in lexicon.categories for word in tokens[position + 1:position + 4]
                   if not PLACEHOLDER.fullmatch(word)) and not any(
                    PLACEHOLDER.fullmatch(word) for word in tokens[position + 1:position + 4]):
                continue  # "I hate horror films": about a kind of item
            if self._negated(tokens, position, used):
                mild = token in lexicon.superlatives
                polarity = -polarity if polarity < 0 else (-0.5 if mild else -max(polarity, 1.0))
                name = f"{'+' if polarity > 0 else '-'}not {token}"
            else:
                name = f"{'+' if polarity > 0 else '-'}{token}"
            seen = 0.0 if token in lexicon.unjudged else self.options.judged_seen
            cues.append(Cue(name, polarity, seen, position))
        return cues

    def _negated(self, tokens: list[str], position: int, used: list[bool], window: int | None = None) -> bool:
        window = self.options.negation_window if window is None else window
        for back in range(1, window + 1):
            index = position - back
            if index < 0:
                return False
            token = tokens[index]
            if token == "," or PLACEHOLDER.fullmatch(token) or (back > 1 and token in NEGATION_BARRIERS):
                return False
            if token in SUBJECTS and not (index and tokens[index - 1] in CARRIERS):
                return False
            # "no" opening a clause answers the question before it ("No, I loved it"), it negates nothing
            if token in self.lexicon.negators and not (token == "no" and index == 0) and not used[index]:
                return True
        return False

    def _seen_cues(self, clause: Clause, joined: str) -> list[Cue]:
        cues = []
        if self._seen_long_ago.search(joined) or self._seen_again.search(joined):
            cues.append(Cue("seen:yes (again / long ago)", 0.0, 2.0, 0))
        for match in self._not_seen.finditer(joined):
            if not self._about_you(joined, match.start()):
                cues.append(Cue("seen:no " + match.group(0), 0.0, -1.0, joined[: match.start()].count(" ")))
        if not any(c.seen < 0 for c in cues):
            tokens = clause.tokens
            offset = 0
            for position, token in enumerate(tokens):
                start, offset = offset, offset + len(token) + 1
                if token not in self.past or self._about_you(joined, start):
                    continue
                before = tokens[max(0, position - 3):position]
                # "want to read", "will see": an intention, not a past reading
                if any(word in ("to", "will", "ill", "gonna", "wanna", "would", "might", "should") for word in before):
                    continue
                if clause.question and not any(word in ("i", "ive", "we", "weve") for word in before):
                    continue
                cues.append(Cue(f"seen:yes {token}", 0.0, 1.0, position))
                break
        return cues

    @staticmethod
    def _about_you(joined: str, offset: int) -> bool:
        """A seen cue whose subject is the other speaker ("have you seen", "you saw")."""
        before = joined[max(0, offset - 24):offset].split(" ")[-3:]
        return "you" in before or "u" in before

    def answer(self, clause: Clause) -> Literal["yes", "no"] | None:
        joined = clause.joined
        if self._no.search(joined):
            return "no"
        if self._yes.search(joined):
            return "yes"
        return None


ANAPHORS = frozenset({"it", "this", "that"})
OTHERS = frozenset({"those", "these", "them", "others", "other", "another", "something", "some", "all", "both",
                    "ones", "any", "anything"})


def _points_back(tokens: Sequence[str]) -> bool:
    """Whether a clause speaks of one thing already named ("I'll check it out", "this book")."""
    return any(t in ANAPHORS for t in tokens) and not any(t in OTHERS for t in tokens)


def _sign(value: float) -> int:
    return (value > 0) - (value < 0)


def _phrases(patterns: Sequence[str]) -> list[re.Pattern]:
    return [re.compile(r"(?<!\S)(" + pattern + r")(?!\S)") for pattern in patterns]


class _Joined:
    """A clause's tokens joined by spaces, for phrase patterns, with the character offset of each token so
    that a match maps back to token positions in log time (a 100 KB message has 20,000 tokens)."""

    def __init__(self, tokens: list[str]):
        self.tokens = tokens
        self.joined = " ".join(tokens)
        self.starts: list[int] = []
        offset = 0
        for token in tokens:
            self.starts.append(offset)
            offset += len(token) + 1

    def spans(self, pattern: re.Pattern) -> list[tuple[int, int]]:
        """Token index ranges [start, end) of the matches of ``pattern``."""
        spans = []
        for match in pattern.finditer(self.joined):
            if match.end() == match.start():
                continue
            start = bisect.bisect_right(self.starts, match.start()) - 1
            end = bisect.bisect_left(self.starts, match.end())
            spans.append((start, end))
        return spans


def _mark(used: list[bool], start: int, end: int) -> None:
    for index in range(start, min(end, len(used))):
        used[index] = True


# ----------------------------------------------------------------------------------------- the rule path
@dataclass
class _Tally:
    """What has been gathered about one item while reading the dialogue."""

    first_mentioned_by: Mentioner
    score: float = 0.0
    seen: float = 0.0
    evidence: list[Evidence] = field(default_factory=list)

    def add(self, turn_index: int, kind: EvidenceKind, clause: Clause, cues: Sequence[Cue], weight: float) -> None:
        if not cues:
            return
        self.score += weight * sum(cue.polarity for cue in cues)
        self.seen += sum(cue.seen for cue in cues)
        self.evidence.append(Evidence(turn_index=turn_index, kind=kind, text=clause.text,
                                      cues=tuple(cue.name for cue in cues)))


class RuleSentiment:
    """The rule path: lexicon cues in the clauses around each mention and in the seeker's reactions."""

    def __init__(self, catalog: Catalog, vocabulary: Vocabulary = GENERIC, options: RuleOptions | None = None,
                 lexicon: SentimentLexicon | None = None):
        self.catalog = catalog
        self.vocabulary = vocabulary
        self.options = options or RuleOptions()
        self.lexicon = lexicon or SentimentLexicon()
        self.clauses = ClauseReader(catalog, self.lexicon.contrast)
        self.cue_reader = CueReader(self.lexicon, vocabulary, self.options)

    def analyze(self, context: ContextView | Sequence[Turn]) -> SentimentResult:
        turns = list(context.context if isinstance(context, ContextView) else context)
        tallies: dict[str, _Tally] = {}
        for index, turn in enumerate(turns):
            for item_id in turn.items:
                if item_id not in tallies:
                    tallies[item_id] = _Tally(first_mentioned_by=turn.role)
            if turn.role != "seeker":
                continue
            read = self.clauses.read(turn)
            previous = turns[index - 1] if index else None
            proposal = previous if previous is not None and previous.role == "recommender" else None
            targets = self._reaction_targets(proposal, turns[:index - 1], read) if proposal else []
            self._read_mentions(index, read, tallies, targets)
            if proposal is not None and targets:
                self._read_reaction(index, proposal, targets, read, tallies)
        return SentimentResult(items=tuple(self._decide(item_id, tally) for item_id, tally in tallies.items()))

    def _read_mentions(self, turn_index: int, read: TurnClauses, tallies: dict[str, _Tally],
                       targets: Sequence[str]) -> None:
        clauses = read.clauses
        for position, clause in enumerate(clauses):
            if not clause.items:
                continue
            cues = self.cue_reader.cues(clause)
            said = _sign(sum(cue.polarity for cue in cues))
            for item_id, own in self._share(clause, cues).items():
                tallies[item_id].add(turn_index, "mention", clause, own, 1.0)
            # "Seen Gladiator. Great movie!": the clauses after a mention that name no other item
            for follow in clauses[position + 1:]:
                if follow.items:
                    break
                # an intention after the seeker's own mention is about it only if it points back at it ("I'll
                # check it out"), not at something else ("I'll check out the others")
                points_back = _points_back(follow.tokens)
                follow_cues = [cue for cue in self.cue_reader.cues(follow) if points_back or not cue.intention]
                # "I liked X. I don't like that one either": a new sentence that contradicts the mention, in
                # an answer to a proposal, is about the proposal
                contradicts = said != 0 and _sign(sum(c.polarity for c in follow_cues)) == -said
                if targets and contradicts and follow.tokens[0] not in self.lexicon.contrast:
                    for item_id in targets:
                        tallies[item_id].add(turn_index, "reaction", follow, follow_cues, self.options.reaction_weight)
                    continue
                for item_id in clause.items:
                    tallies[item_id].add(turn_index, "follow-up", follow, follow_cues, self.options.follow_up_weight)
        for item_id in read.unplaced:  # linked, but its title is not in the text: the item-less clauses speak
            for clause in clauses:
                if not clause.items:
                    tallies[item_id].add(turn_index, "mention", clause, self.cue_reader.cues(clause), 1.0)

    def _share(self, clause: Clause, cues: Sequence[Cue]) -> dict[str, list[Cue]]:
        """Each cue of a clause goes to the nearest title in it; an item that got none shares the clause's
        opinion ("I love X and Y"), and the items named right after a negator get that negation ("but not X")."""
        own: dict[str, list[Cue]] = {item_id: [] for item_id in clause.items}
        positions = sorted(clause.item_at)
        for cue in cues:
            nearest = min(positions, key=lambda p: (abs(p - cue.position), p < cue.position))
            own[clause.item_at[nearest]].append(cue)
        for position, item_id in clause.item_at.items():
            before = clause.tokens[max(0, position - 2):position]
            negator = "instead of" if before == ["instead", "of"] else (before[-1] if before else "")
            if negator in ITEM_NEGATORS and not clause.question:
                own[item_id].append(Cue(f"-{negator} <title>", -1.0, 0.0, position))
            # "X was way better than Y": X wins the comparison
            after = " ".join(clause.tokens[position + 1:position + 6])
            if COMPARISON.search(after) and not clause.question:
                own[item_id].append(Cue("+<title> better than", 1.0, 0.0, position))
        if len(own) > 1:
            for item_id, mine in own.items():
                if not mine:
                    # "I've already seen Interstellar and The Prestige": a seen cue is shared as well (not a "not
                    # seen" one: sharing those lowered seen macro-F1 on ReDial valid, 0.761 -> 0.758)
                    own[item_id] = [cue for cue in cues if cue.polarity != 0.0 or cue.seen > 0.0]
        return own

    @staticmethod
    def _reaction_targets(proposal: Turn, earlier: Sequence[Turn], read: TurnClauses) -> list[str]:
        """The items a recommender turn proposed (new in it, else all it named) that the answer does not name."""
        if not proposal.items:
            return []
        said_before = {item for turn in earlier for item in turn.items}
        named_now = {item for clause in read.clauses for item in clause.items} | set(read.unplaced)
        proposed = [i for i in proposal.items if i not in said_before] or list(proposal.items)
        return [i for i in proposed if i not in named_now]

    def _read_reaction(self, turn_index: int, proposal: Turn, targets: Sequence[str], read: TurnClauses,
                       tallies: dict[str, _Tally]) -> None:
        """The seeker's answer to the recommender turn before it, for the items that turn proposed: the clauses
        before the seeker names an item of their own, and a bare yes or no to "have you seen" / "do you like"."""
        reaction = list(itertools.takewhile(lambda clause: not clause.items, read.clauses))
        cues = [self.cue_reader.cues(clause) for clause in reaction]
        # "yes i enjoyed that one Jigsaw (2017) is one i liked too": an answer may open a clause with a title
        first = read.clauses[0] if read.clauses else None
        opening = None
        if first is not None and first.items and min(first.item_at) > 0:
            words = first.tokens[: min(first.item_at)]
            opening = Clause(words, [], {}, first.question, " ".join(words))
        answered = reaction[0] if reaction else opening
        speaks_of_seen = any(cue.name.startswith("seen:") for found in cues for cue in found)
        answer = self._answer(proposal, answered, speaks_of_seen) if answered is not None else None
        weight = self.options.reaction_weight
        for item_id in targets:
            for position, (clause, found) in enumerate(zip(reaction, cues, strict=True)):
                extra = [answer] if answer is not None and position == 0 else []
                tallies[item_id].add(turn_index, "reaction", clause, [*found, *extra], weight)
            if answer is not None and opening is not None and answered is opening:
                tallies[item_id].add(turn_index, "answer", opening, [answer], weight)

    def _answer(self, proposal: Turn, clause: Clause, speaks_of_seen: bool) -> Cue | None:
        """A yes or no opening ``clause``, as an answer to the question of the recommender's ``proposal``."""
        answer = self.cue_reader.answer(clause)
        if answer is None:
            return None
        question = " ".join(c.joined for c in self.clauses.read(proposal).clauses if c.question)
        asks_seen = bool(self.cue_reader.seen_question.search(question))
        asks_like = bool(self.cue_reader.like_question.search(question))
        if not (asks_seen or asks_like):
            return None
        sign = 1.0 if answer == "yes" else -1.0
        # "Have you seen X?" - "No": not seen, which says nothing of liking it; nor does "No. Haven't seen it."
        about_liking = asks_like and not asks_seen and not speaks_of_seen
        return Cue(f"answer:{answer}", sign if about_liking else 0.0, sign if asks_seen else 0.0, 0)

    def _decide(self, item_id: str, tally: _Tally) -> ItemSentiment:
        options = self.options
        if tally.score >= options.like_threshold:
            label: Liking = "liked"
        elif tally.score <= -options.dislike_threshold:
            label = "disliked"
        else:
            label = "neutral"
        seen: SeenState = "yes" if tally.seen > 0 else "no" if tally.seen < 0 else "unknown"
        return ItemSentiment(item_id=item_id, label=label, seen=seen, score=round(tally.score, 3),
                             confidence=round(math.tanh(abs(tally.score)), 3),
                             first_mentioned_by=tally.first_mentioned_by, evidence=tuple(tally.evidence))


# ------------------------------------------------------------------------------------------ the LLM path
SENTIMENT_SYSTEM = "You read a conversation about {plural} and report what the Seeker thinks of one {noun}."
SENTIMENT_USER = (
    "Conversation:\n{dialogue}\n\n"
    "About the {noun} \"{title}\": does the Seeker like it (or want it), and has the Seeker {past} it?\n"
    "Answer with JSON only: {{\"liked\": \"yes\" or \"no\" or \"unsure\", \"seen\": \"yes\" or \"no\" or "
    "\"unsure\"}}"
)
_ANSWER_VALUES = ["yes", "no", "unsure"]
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"liked": {"type": "string", "enum": _ANSWER_VALUES},
                   "seen": {"type": "string", "enum": _ANSWER_VALUES}},
    "required": ["liked", "seen"],
    "additionalProperties": False,
}


class LLMAnswer(BaseModel):
    """The only answer the LLM path accepts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    liked: Literal["yes", "no", "unsure"]
    seen: Literal["yes", "no", "unsure"]


def parse_answer(text: str) -> LLMAnswer | None:
    """The answer, or None unless ``text`` is exactly one JSON object of the schema (whitespace aside)."""
    try:
        value = json.loads(text.strip())
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    try:
        return LLMAnswer.model_validate(value)
    except ValidationError:
        return None


class LLMOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    window_turns: int = Field(1, ge=0, le=6, description="turns kept after each turn that names the item")
    max_chars: int = Field(1200, ge=100, description="characters of dialogue the LLM reads, most recent kept")
    constrained: bool = Field(True, description="send the answer's JSON schema (a grammar for llama.cpp)")
    max_tokens: int = Field(24, ge=8)


class LLMSentiment:
    """The LLM path: one question per item; an unusable answer falls back to the rule path's label."""

    def __init__(self, llm: LLM, rules: RuleSentiment, options: LLMOptions | None = None):
        self.llm, self.rules = llm, rules
        self.options = options or LLMOptions()

    def request(self, turns: Sequence[Turn], item_id: str) -> ChatRequest:
        vocabulary = self.rules.vocabulary
        title = self.rules.catalog.get(item_id).display_title if item_id in self.rules.catalog else item_id
        past = PAST_FORMS.get(vocabulary.domain, PAST_FORMS["items"])[0]
        user = SENTIMENT_USER.format(dialogue=self.window(turns, item_id), noun=vocabulary.noun, title=title,
                                     past=past)
        return ChatRequest.from_prompt(user, system=SENTIMENT_SYSTEM.format(plural=vocabulary.plural,
                                                                            noun=vocabulary.noun),
                                       max_tokens=self.options.max_tokens, temperature=0.0,
                                       json_schema=ANSWER_SCHEMA if self.options.constrained else None)

    def window(self, turns: Sequence[Turn], item_id: str) -> str:
        """The turns that name the item and the ``window_turns`` after each, in order, cut to ``max_chars``."""
        keep: set[int] = set()
        for index, turn in enumerate(turns):
            if item_id in turn.items:
                keep.update(range(index, min(len(turns), index + 1 + self.options.window_turns)))
        lines = [f"{turns[i].role.capitalize()}: {' '.join(turns[i].text.split())}" for i in sorted(keep)
                 if turns[i].text.strip()]
        text = "\n".join(lines)
        return text[-self.options.max_chars:]

    def analyze(self, context: ContextView | Sequence[Turn], only: Sequence[str] | None = None) -> SentimentResult:
        """Every item, the LLM asked about each (or those in ``only``; the others keep the rule label)."""
        turns = list(context.context if isinstance(context, ContextView) else context)
        ruled = self.rules.analyze(turns)
        asked = set(ruled_ids(ruled) if only is None else only)
        items, fallbacks, calls = [], {}, 0
        for rule in ruled.items:
            if rule.item_id not in asked:
                items.append(rule)
                continue
            calls += 1
            reason = None
            try:
                response = self.llm.complete(self.request(turns, rule.item_id))
            except LLMUnavailableError:
                raise  # a backend that cannot serve at all is a setup problem, not one item's failure
            except LLMError as err:
                reason, answer = f"llm-error: {type(err).__name__}", None
            else:
                answer = parse_answer(response.text)
                if answer is None:
                    reason = "unparsable"
            if answer is None:
                fallbacks[reason.split(":")[0]] = fallbacks.get(reason.split(":")[0], 0) + 1
                items.append(rule.model_copy(update={"decided_by": "rule-fallback", "fallback_reason": reason}))
                continue
            label: Liking = {"yes": "liked", "no": "disliked", "unsure": "neutral"}[answer.liked]
            seen: SeenState = {"yes": "yes", "no": "no", "unsure": "unknown"}[answer.seen]
            items.append(rule.model_copy(update={"label": label, "seen": seen, "decided_by": "llm",
                                                 "score": {"liked": 1.0, "disliked": -1.0, "neutral": 0.0}[label],
                                                 "confidence": 0.0 if label == "neutral" else 1.0}))
        return SentimentResult(items=tuple(items), llm_calls=calls, fallbacks=fallbacks)


def ruled_ids(result: SentimentResult) -> list[str]:
    return [item.item_id for item in result.items]


class SentimentAnalyzer:
    """``analyze_sentiment``: the LLM path when an LLM is given, else the rule path."""

    def __init__(self, catalog: Catalog, vocabulary: Vocabulary = GENERIC, llm: LLM | None = None,
                 rule_options: RuleOptions | None = None, llm_options: LLMOptions | None = None):
        self.rules = RuleSentiment(catalog, vocabulary, rule_options)
        self.llm_path = LLMSentiment(llm, self.rules, llm_options) if llm is not None else None

    def analyze(self, context: ContextView | Sequence[Turn]) -> SentimentResult:
        if self.llm_path is not None:
            return self.llm_path.analyze(context)
        return self.rules.analyze(context)
