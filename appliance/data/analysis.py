"""What one Presidio analysis needs from spaCy, made cheaply: the NLP artifacts (tokens, their offsets and ends,
lower-cased words as lemmas, context keywords) read off a spaCy Doc in one array, and an analyzer that hands each
recognizer its own findings without rescanning all of them once per recognizer, and Presidio's pattern matching
without its per-pattern clock reads and debug lines.

Imported only after Presidio (the scrubber imports Presidio its own way, without torch).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from functools import partial

import numpy as np
import regex
from presidio_analyzer import AnalyzerEngine, EntityRecognizer, PatternRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.pattern_recognizer import REGEX_TIMEOUT_SECONDS
from spacy.attrs import IDX, IS_PUNCT, IS_SPACE, LENGTH, LOWER
from thinc.api import NumpyOps

_log = logging.getLogger("presidio-analyzer")


class MatmulOps(NumpyOps):
    """thinc's CPU operations with its matrix products done by numpy (OpenBLAS) instead of BLIS: the named-entity
    model's convolutions are small products (a few thousand tokens by 288 by 288), where numpy's kernel measured
    several times BLIS's speed here (and the same entities on the help-desk benchmark's texts)."""

    name = "appliance-matmul"

    def gemm(self, x, y, out=None, trans1=False, trans2=False):
        a = x.T if trans1 else x
        b = y.T if trans2 else y
        if out is None:
            return np.matmul(a, b)
        np.matmul(a, b, out=out)
        return out


def artifacts(nlp_engine, doc, language: str) -> NlpArtifacts:
    """Presidio's NLP artifacts of `doc`, as its spaCy engine builds them, but with each token's lower-cased text
    as its lemma (the pipeline has no lemmatizer: context words are matched against lower-cased tokens) and every
    word that is not punctuation or space as a context keyword (spaCy's stop words include "call", "first" and
    "name"). Read in one array, without a Python object per token."""
    rows = doc.to_array([IDX, LENGTH, LOWER, IS_PUNCT, IS_SPACE]).tolist() if len(doc) else []
    strings = doc.vocab.strings
    entities, scores = nlp_engine._get_updated_entities(  # Presidio's own label mapping and ignore list
        list(doc.ents), [nlp_engine.ner_model_configuration.default_score] * len(doc.ents))
    out = NlpArtifacts.__new__(NlpArtifacts)  # the constructor would recompute keywords from lemmas
    out.entities, out.scores, out.tokens, out.nlp_engine = entities, scores, doc, nlp_engine
    out.tokens_indices = [row[0] for row in rows]
    out.token_ends = [row[0] + row[1] for row in rows]
    out.lemmas = [strings[row[2]] for row in rows]
    out.keywords = [lemma for lemma, row in zip(out.lemmas, rows, strict=True) if not (row[3] or row[4])]
    return out


def pattern_findings(recognizer: PatternRecognizer, text: str, entities=None, nlp_artifacts=None,
                     regex_flags: int | None = None) -> list[RecognizerResult]:
    """`PatternRecognizer.analyze` of `recognizer`: every pattern's matches (the same regex engine, flags and
    timeout), each validated and invalidated by the recognizer and explained as Presidio explains it, those left
    at the minimum score dropped and duplicates removed; the same findings (tested against Presidio's own on the
    labelled sets), without two clock reads and a debug line for every pattern on every text (a fifth of the
    pattern recognizers' time)."""
    if not recognizer.patterns:
        return []
    flags = regex_flags if regex_flags else recognizer.global_regex_flags
    ids = {RecognizerResult.RECOGNIZER_NAME_KEY: recognizer.name,
           RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: recognizer.id}
    entity = recognizer.supported_entities[0]
    results = []
    for pattern in recognizer.patterns:
        if not pattern.compiled_regex or pattern.compiled_with_flags != flags:
            pattern.compiled_with_flags = flags
            pattern.compiled_regex = regex.compile(pattern.regex, flags=flags)
        try:
            for match in pattern.compiled_regex.finditer(text, timeout=REGEX_TIMEOUT_SECONDS):
                start, end = match.span()
                if start == end:
                    continue
                value = text[start:end]
                valid = recognizer.validate_result(value)
                explanation = recognizer.build_regex_explanation(recognizer.name, pattern.name, pattern.regex,
                                                                 pattern.score, valid, flags)
                found = RecognizerResult(entity_type=entity, start=start, end=end, score=pattern.score,
                                         analysis_explanation=explanation, recognition_metadata=dict(ids))
                if valid is not None:
                    found.score = EntityRecognizer.MAX_SCORE if valid else EntityRecognizer.MIN_SCORE
                if recognizer.invalidate_result(value):
                    found.score = EntityRecognizer.MIN_SCORE
                if found.score > EntityRecognizer.MIN_SCORE:
                    results.append(found)
                explanation.score = found.score
        except TimeoutError:  # as Presidio: the pattern's matches so far stand, the rest of it is skipped
            _log.warning("Regex pattern '%s' timed out after %s seconds, skipping.", pattern.name,
                         REGEX_TIMEOUT_SECONDS)
    return EntityRecognizer.remove_duplicates(results) if results else results


class Analyzer(AnalyzerEngine):
    """Presidio's analyzer; each recognizer's own context step is given its findings from one grouping of them,
    in the order Presidio gives them, instead of two scans of every finding for every recognizer; a pattern
    recognizer that keeps Presidio's own `analyze` runs `pattern_findings`."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for recognizer in self.registry.recognizers:
            if isinstance(recognizer, PatternRecognizer) and type(recognizer).analyze is PatternRecognizer.analyze:
                recognizer.analyze = partial(pattern_findings, recognizer)

    def _enhance_using_context(self, text, raw_results, nlp_artifacts, recognizers, context=None):
        key = RecognizerResult.RECOGNIZER_IDENTIFIER_KEY
        mine = defaultdict(list)
        for result in raw_results:
            mine[result.recognition_metadata[key]].append(result)
        results = []
        for recognizer in recognizers:
            own = mine.get(recognizer.id, [])
            if type(recognizer).enhance_using_context is not EntityRecognizer.enhance_using_context:
                others = [r for r in raw_results if r.recognition_metadata[key] != recognizer.id]
                own = recognizer.enhance_using_context(text=text, raw_recognizer_results=own,
                                                       other_raw_recognizer_results=others,
                                                       nlp_artifacts=nlp_artifacts, context=context)
            results.extend(own)
        return self.context_aware_enhancer.enhance_using_context(
            text=text, raw_results=results, nlp_artifacts=nlp_artifacts, recognizers=recognizers, context=context)
