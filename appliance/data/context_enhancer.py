"""Presidio's lemma context enhancer with the words after a finding counted from its last token, not its first.

Presidio looks for context words a number of tokens around the token where a finding starts; a phone number
that spaCy splits into several tokens ("09721 88 29 47 office", "40-95-78-17 office") then has its own digits in
the window after it and the context word out of reach. Counting the words after from the finding's last token
gives every finding the same reach whatever its length.

The scoring is Presidio's; two costs of its implementation are left out: the deep copy of every finding (the
analyzer hands over findings nothing else holds), and the walk over every token to find where a finding starts
(the tokens' ends are known, so a binary search finds it).
"""

from __future__ import annotations

from bisect import bisect_right

from presidio_analyzer import RecognizerResult
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer, LemmaContextAwareEnhancer


def token_ends(nlp_artifacts) -> list[int]:
    """Where each token ends (the scrubber's artifacts carry them; Presidio's are computed here)."""
    ends = getattr(nlp_artifacts, "token_ends", None)
    if ends is None:
        ends = [i + len(t) for i, t in zip(nlp_artifacts.tokens_indices, nlp_artifacts.tokens, strict=True)]
        nlp_artifacts.token_ends = ends
    return ends


class EndAnchoredContextEnhancer(LemmaContextAwareEnhancer):
    def enhance_using_context(self, text, raw_results, nlp_artifacts, recognizers, context=None):
        if nlp_artifacts is None:
            return raw_results
        by_id = {recognizer.id: recognizer for recognizer in recognizers}
        extra = [word.lower() for word in context or ()]
        for result in raw_results:
            meta = result.recognition_metadata or {}
            recognizer = by_id.get(meta.get(RecognizerResult.RECOGNIZER_IDENTIFIER_KEY))
            if not recognizer or not recognizer.context or meta.get(RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY):
                continue
            words = self._extract_surrounding_words(nlp_artifacts, text[result.start:result.end], result.start)
            supporting = self._find_supportive_word_in_context(words + extra, recognizer.context,
                                                               self.context_matching_mode)
            if supporting:
                result.score = min(max(result.score + self.context_similarity_factor,
                                       self.min_score_with_context_similarity), ContextAwareEnhancer.MAX_SCORE)
                if result.analysis_explanation is not None:
                    result.analysis_explanation.set_supportive_context_word(supporting)
                    result.analysis_explanation.set_improved_score(result.score)
        return raw_results

    def _extract_surrounding_words(self, nlp_artifacts, word: str, start: int) -> list[str]:
        if not nlp_artifacts.tokens:
            return [""]
        ends = token_ends(nlp_artifacts)
        first = bisect_right(ends, start)  # the first token ending after the finding's start: the one holding it
        if first == len(ends):
            raise ValueError(f"Did not find word {word!r} in the list of tokens although it is expected to be found")
        end = start + max(len(word), 1)
        last = bisect_right(nlp_artifacts.tokens_indices, end - 1, lo=first) - 1
        last = max(last, first)
        keywords = nlp_artifacts.keywords
        before = self._add_n_words_backward(first, self.context_prefix_count, nlp_artifacts.lemmas, keywords)
        after = self._add_n_words_forward(last, self.context_suffix_count, nlp_artifacts.lemmas, keywords)
        return list(set(before + after))
