"""Presidio's lemma context enhancer with the words after a finding counted from its last token, not its first.

Presidio looks for context words a number of tokens around the token where a finding starts; a phone number
that spaCy splits into several tokens ("09721 88 29 47 office", "40-95-78-17 office") then has its own digits in
the window after it and the context word out of reach. Counting the words after from the finding's last token
gives every finding the same reach whatever its length.
"""

from __future__ import annotations

from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer


class EndAnchoredContextEnhancer(LemmaContextAwareEnhancer):
    def _extract_surrounding_words(self, nlp_artifacts, word: str, start: int) -> list[str]:
        if not nlp_artifacts.tokens:
            return [""]
        tokens, indices = nlp_artifacts.tokens, nlp_artifacts.tokens_indices
        first = self._find_index_of_match_token(word, start, tokens, indices)
        end = start + max(len(word), 1)
        last = first
        while last + 1 < len(tokens) and indices[last + 1] < end:
            last += 1
        keywords = nlp_artifacts.keywords
        before = self._add_n_words_backward(first, self.context_prefix_count, nlp_artifacts.lemmas, keywords)
        after = self._add_n_words_forward(last, self.context_suffix_count, nlp_artifacts.lemmas, keywords)
        return list(set(before + after))
