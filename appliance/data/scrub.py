"""Scrubbing personal data with Presidio, driven by a PiiPolicy.

The NLP engine is configured explicitly (never Presidio's default, which would download a spaCy model);
a policy whose model is missing stops with an error instead of silently running without NER. Texts are
analysed in batches through spaCy's `nlp.pipe`, with the dependency parser disabled (nothing here uses it),
and only the recognizers the policy's entities need are loaded.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import logging
import os
import re
import sys
from collections import Counter
from collections.abc import Container, Iterable
from dataclasses import dataclass, field

from appliance import offline
from appliance.data import scrub_workers
from appliance.data.policy import PiiPolicy
from appliance.errors import ConfigError

PLACEHOLDER = "<{entity}>"
# A placeholder as it stands in a scrubbed text: "<STREET_ADDRESS>", "<PERSON_9b3b918de8>".
PLACEHOLDERS = re.compile(r"<[A-Z][A-Z0-9_]*?(?:_[0-9a-f]{10})?>")


def _import_presidio() -> None:
    """Import Presidio without its optional transformers NLP engine and thinc's torch support, which it
    imports eagerly when they are installed (11 s of start-up here) and which a spaCy pipeline never uses.
    Both stay importable for the rest of the process."""
    blocked = [name for name in ("transformers", "torch") if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # makes `import name` raise ImportError, which both libraries handle
    try:
        import presidio_analyzer  # noqa: F401
        import presidio_analyzer.nlp_engine  # noqa: F401
    finally:
        for name in blocked:
            if sys.modules.get(name) is None:
                del sys.modules[name]


@dataclass
class ScrubResult:
    text: str
    found: Counter = field(default_factory=Counter)  # entity -> count
    verified: bool = False  # `text` itself had a full analysis that found nothing more
    language: str = ""  # the language whose spaCy pipeline read the text


@dataclass
class Replaced:
    """A text with findings replaced by the policy's operators: `spans` pairs each replaced span of the source
    (start, end) with the span of what replaced it in `text` (start, end)."""

    text: str
    spans: list[tuple[int, int, int, int]]
    found: Counter


class Scrubber:
    def __init__(self, policy: PiiPolicy, hmac_key: bytes | None = None) -> None:
        self.policy = policy
        if any(rule.operator == "hash" for rule in policy.entities.values()) and not hmac_key:
            raise ConfigError("the policy hashes entities but no HMAC key is available (needs the key passphrase)")
        self._hmac_key = hmac_key
        self.pipelines = {policy.language: policy.nlp.model, **policy.nlp.pipelines}
        for model in self.pipelines.values():
            if importlib.util.find_spec(model) is None:
                raise ConfigError(f"the policy needs the spaCy pipeline {model!r}, which is not installed; "
                                  "ingest will not run without its named-entity recognition")
        offline.pin_tldextract()
        logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
        _import_presidio()
        from presidio_analyzer import PatternRecognizer, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_anonymizer import AnonymizerEngine

        from appliance.data.analysis import Analyzer, MatmulOps, artifacts
        from appliance.data.entity_decoding import annotate
        from appliance.data.language import detect
        from appliance.data.person_spans import echoes, settle
        from appliance.data.recognizers import shipped
        from appliance.data.recognizers.address_blocks import extend as extend_addresses
        from appliance.data.recognizers.phone_national import NationalPhoneRecognizer

        # The main pipeline loads now; another language's when a text in that language first needs it (spaCy's
        # French language class compiles its tokenizer exceptions for 4-5 s on import, which an English-only
        # ingest or the gateway's start need not pay).
        provider = NlpEngineProvider(nlp_configuration={
            "nlp_engine_name": "spacy", "models": [{"lang_code": policy.language, "model_name": policy.nlp.model}],
        })
        self._matmul = MatmulOps
        self.nlp_engine = self._loading(provider.create_engine)
        self._slim(self.nlp_engine.nlp[policy.language])
        from threadpoolctl import ThreadpoolController

        # numpy's BLAS, now the pipeline's, runs one thread while analysing: large inputs are split over processes
        # (two BLAS threads in each of two workers on two cores took 1.9x as long as one).
        self._blas = ThreadpoolController()
        wanted = set(policy.entities)
        registry = RecognizerRegistry(supported_languages=[policy.language])
        registry.load_predefined_recognizers(languages=[policy.language], nlp_engine=self.nlp_engine)
        registry.recognizers = [r for r in registry.recognizers if wanted & set(r.supported_entities)
                                and r.name != "PhoneRecognizer"]
        # The registry's IBAN recognizer matches case-blind, so a word after the number ("ES11 ... 7515 Inject")
        # joins it and the checksum then refuses the whole; the recognizer's own default is case-sensitive.
        from presidio_analyzer.predefined_recognizers import IbanRecognizer

        registry.recognizers = [IbanRecognizer() if r.name == "IbanRecognizer" else r for r in registry.recognizers]
        self._settle_people = settle  # imported here: the recognizers package imports Presidio
        self._echoes = echoes
        self._extend_addresses = extend_addresses
        self._artifacts = artifacts
        self._annotate = annotate
        self._detect = detect
        self._keep = tuple(re.compile(k) for k in policy.keep_patterns)
        for recognizer in shipped(policy.languages):
            if wanted & set(recognizer.supported_entities):
                if isinstance(recognizer, NationalPhoneRecognizer):
                    recognizer.keep = self._keep  # what is kept is never a phone number: not parsed at all
                registry.add_recognizer(recognizer)
        for spec in policy.recognizers:
            from presidio_analyzer import Pattern

            registry.add_recognizer(PatternRecognizer(
                supported_entity=spec.entity, name=spec.name,
                patterns=[Pattern(p.name, p.regex, p.score) for p in spec.patterns] or None,
                deny_list=spec.deny_list or None, context=spec.context or None))
        from appliance.data.context_enhancer import EndAnchoredContextEnhancer

        # Context words count two tokens after a finding (after its last token: "09721 88 29 47 office") as well
        # as five before.
        enhancer = EndAnchoredContextEnhancer(context_prefix_count=5, context_suffix_count=2)
        self.analyzer = Analyzer(registry=registry, nlp_engine=self.nlp_engine, context_aware_enhancer=enhancer,
                                       supported_languages=[policy.language],
                                       default_score_threshold=policy.score_threshold)
        self.anonymizer = AnonymizerEngine()
        self.entities = sorted(wanted)
        self.operators = {name: self._operator(name, rule) for name, rule in policy.entities.items()}

    def _loading(self, load):
        """`load()` with thinc's operations set to numpy's matrix products (a pipeline's layers keep the
        operations current when it loads)."""
        from thinc.api import get_current_ops, set_current_ops

        previous = get_current_ops()
        set_current_ops(self._matmul())
        try:
            return load()
        finally:
            set_current_ops(previous)

    @staticmethod
    def _slim(nlp) -> None:
        """The small pipelines' NER has its own embedding: everything else only costs time here. Without the
        lemmatizer, context words are matched against lower-cased tokens (see analysis.artifacts)."""
        for pipe in ("parser", "tagger", "morphologizer", "attribute_ruler", "lemmatizer", "tok2vec"):
            if pipe in nlp.pipe_names:
                nlp.disable_pipe(pipe)

    def load_pipelines(self, languages) -> None:
        """Load the policy's pipelines of these languages that are not loaded yet (before forking workers, so
        that they inherit them)."""
        import spacy

        for language in dict.fromkeys(languages):
            if language not in self.nlp_engine.nlp:
                nlp = self._loading(lambda language=language: spacy.load(self.pipelines[language]))
                self._slim(nlp)
                self.nlp_engine.nlp[language] = nlp

    def _operator(self, entity: str, rule):
        from presidio_anonymizer.entities import OperatorConfig

        if rule.operator == "replace":
            return OperatorConfig("replace", {"new_value": PLACEHOLDER.format(entity=entity)})
        if rule.operator == "redact":
            return OperatorConfig("redact", {})
        if rule.operator == "mask":
            return OperatorConfig("custom", {"lambda": lambda value, keep=rule.keep_last: (
                "*" * max(len(value) - keep, 0) + (value[-keep:] if keep else ""))})
        key = self._hmac_key

        def keyed(value: str) -> str:
            digest = hmac.new(key, value.strip().lower().encode("utf-8"), hashlib.sha256).hexdigest()[:10]
            return f"<{entity}_{digest}>"

        return OperatorConfig("custom", {"lambda": keyed})

    def analyze(self, texts: list[str], batch_size: int = 64) -> list[list]:
        """Presidio results for each text, above each entity's threshold, business content the policy keeps left
        out, in each text's own offsets: what the two stages of `scrub_here` find, before anything is replaced."""
        out = []
        for text, _, first, replaced, second in self._stages(texts, batch_size):
            out.append(first + [self._at_source(text, replaced, r) for r in second])
        return out

    def _stages(self, texts: list[str], batch_size: int = 64):
        """(text, first findings, the text with them replaced, second findings in that text) for each text.

        First every recognizer but spaCy's named-entity pass reads each text (the tokenizer alone stands in for
        the pipeline); then the full analysis, the named-entity pass included, reads the text with what the first
        found already replaced. A name that stands next to a phone number or a card number is a name the
        named-entity pass misses until the number is gone; and the second analysis is a full one of the text as
        it will be stored, so when it finds nothing the text needs no residual scan."""
        first = self._analysis(texts, self.languages(texts), ner=False, batch_size=batch_size)
        replaced = [self._replace(text, results) for text, results in zip(texts, first, strict=True)]
        # The second stage's language is read off the text it analyses, as the residual scan reads it off the
        # stored text: when the second stage finds nothing the two texts are one, and so is their pipeline.
        languages = self.languages([r.text for r in replaced])
        second = self._analysis([r.text for r in replaced], languages, ner=True, batch_size=batch_size)
        for text, language, found, rep, again in zip(texts, languages, first, replaced, second, strict=True):
            yield text, language, found, rep, _outside(rep.text, again, [(a, b) for _, _, a, b in rep.spans])

    def languages(self, texts: list[str]) -> list[str]:
        """The pipeline that reads each text: its language's when the policy has one for the language the text is
        detected in (`language.detect`), the policy's main language's otherwise."""
        if len(self.pipelines) == 1:
            return [self.policy.language] * len(texts)
        main = self.policy.language
        out = []
        for text in texts:
            language = self._detect(text, main)
            out.append(language if language in self.pipelines else main)
        return out

    def _analysis(self, texts: list[str], languages: list[str], ner: bool, batch_size: int = 64) -> list[list]:
        """One analysis of each text by every recognizer, the named-entity pass of the text's language's spaCy
        pipeline included when `ner` is set; findings under their entity's threshold or on kept business content
        dropped, addresses grown to their written extent, people's names settled and echoed."""
        with self._blas.limit(limits=1, user_api="blas"):
            return self._analysis_here(texts, languages, ner, batch_size)

    def _docs(self, texts: list[str], languages: list[str], ner: bool, batch_size: int) -> list:
        """Each text's spaCy Doc, from its language's pipeline (its tokenizer alone unless `ner`), the texts of
        one language in one batch."""
        docs: list = [None] * len(texts)
        self.load_pipelines(languages)
        for language in dict.fromkeys(languages):
            at = [i for i, lang in enumerate(languages) if lang == language]
            nlp = self.nlp_engine.nlp[language]
            group = [texts[i] for i in at]
            made = nlp.tokenizer.pipe(group, batch_size=batch_size)
            if ner:
                made = self._annotate(nlp, made, batch_size)
            for i, doc in zip(at, made, strict=True):
                docs[i] = doc
        return docs

    def _analysis_here(self, texts: list[str], languages: list[str], ner: bool, batch_size: int) -> list[list]:
        # Every recognizer is registered under the policy's main language and reads every text; only the Doc (its
        # tokens for the context words, its named entities) comes from the text's own pipeline.
        language = self.policy.language
        out = []
        for text, doc in zip(texts, self._docs(texts, languages, ner, batch_size), strict=True):
            results = self.analyzer.analyze(text=text, language=language, entities=self.entities,
                                            nlp_artifacts=self._artifacts(self.nlp_engine, doc, language),
                                            allow_list=self.policy.allow_list or None)
            keep = [m.span() for k in self._keep for m in k.finditer(text)]
            kept = self._extend_addresses(text, [r for r in results if r.score >= self._threshold(r.entity_type)
                                                 and not any(r.start < end and start < r.end for start, end in keep)])
            out.append(self._echoes(text, self._settle_people(text, kept)))
        return out

    def _threshold(self, entity: str) -> float:
        rule = self.policy.entities[entity]
        return self.policy.score_threshold if rule.score_threshold is None else rule.score_threshold

    def _replace(self, text: str, results: list) -> Replaced:
        """`text` with `results` replaced by the policy's operators, and where each replacement stands. The spans
        are the anonymizer's own: its conflict resolution and merging, run here so that each replacement's source
        is known (Presidio returns only where the replacements stand)."""
        if not results:
            return Replaced(text, [], Counter())
        from presidio_anonymizer.entities import ConflictResolutionStrategy

        engine = self.anonymizer
        spans = sorted(engine._copy_recognizer_results(results), key=lambda r: (r.start, r.end))
        spans = engine._remove_conflicts_and_get_text_manipulation_data(
            spans, ConflictResolutionStrategy.MERGE_SIMILAR_OR_CONTAINED)
        spans = engine._merge_entities_with_spaces_between(text, spans)
        done = engine.anonymize(text=text, analyzer_results=spans, operators=self.operators)
        items = sorted(done.items, key=lambda item: (item.start, item.end))
        pairs = [(s.start, s.end, i.start, i.end) for s, i in zip(spans, items, strict=True)]
        return Replaced(done.text, pairs, Counter(item.entity_type for item in items))

    @staticmethod
    def _at_source(text: str, replaced: Replaced, result):
        """A finding in the replaced text, moved to where the same characters stand in `text` (a second-stage
        finding never overlaps a replacement)."""
        from presidio_analyzer import RecognizerResult

        shift = 0
        for _, end, _, new_end in replaced.spans:
            if new_end > result.start:
                break
            shift = end - new_end
        return RecognizerResult(result.entity_type, result.start + shift, result.end + shift, result.score,
                                result.analysis_explanation, result.recognition_metadata)

    def scrub_here(self, unique: list[str], batch_size: int = 64) -> list[ScrubResult]:
        """`scrub` of distinct texts, in this process."""
        out = []
        for start in range(0, len(unique), 512):
            for _, language, _, replaced, second in self._stages(unique[start:start + 512], batch_size):
                again = self._replace(replaced.text, second)
                out.append(ScrubResult(again.text, replaced.found + again.found, verified=not second,
                                       language=language))
        return out

    def scrub(self, texts: Iterable[str], batch_size: int = 64, workers: int | None = None) -> list[ScrubResult]:
        """Scrub texts; identical texts are analysed once, and large inputs are split over the CPU cores."""
        texts = list(texts)
        unique = list(dict.fromkeys(t for t in texts if t and t.strip()))
        workers = workers or min(os.cpu_count() or 1, 4)
        if workers > 1 and len(unique) >= scrub_workers.PARALLEL_FROM:
            self.load_pipelines(self.languages(unique))
            results = scrub_workers.scrub(self, unique, workers)
        else:
            results = self.scrub_here(unique, batch_size)
        done = dict(zip(unique, results, strict=True))
        return [done.get(t) or ScrubResult(t) for t in texts]

    def residual(self, texts: list[str], workers: int | None = None, verified: Container[str] = ()) -> Counter:
        """What the analyser still finds in already scrubbed texts (placeholders excluded): a full analysis of
        every distinct text but those in `verified` (the texts of `ScrubResult`s marked verified: their full
        analysis, done while scrubbing, found nothing), split over the CPU cores for large inputs as `scrub` is."""
        return self.start_residual(texts, workers, verified).result()

    def start_residual(self, texts: list[str], workers: int | None = None,
                       verified: Container[str] = ()) -> scrub_workers.PendingResidual:
        """`residual`, started in forked workers that inherit the loaded pipeline (the workers fork before this
        returns, so the caller may go on with other work); small inputs are scanned here and now."""
        unique = list(dict.fromkeys(t for t in texts if t and t.strip() and t not in verified))
        workers = workers or min(os.cpu_count() or 1, 4)
        if workers <= 1 or len(unique) < scrub_workers.PARALLEL_FROM:
            return scrub_workers.PendingResidual(done=self.rescrub(unique))
        self.load_pipelines(self.languages(unique))
        return scrub_workers.start_residual(self, unique, workers)

    def rescrub(self, texts: list[str]) -> tuple[Counter, dict[str, str]]:
        """The residual scan of already scrubbed texts, here and now: what the full analysis finds outside the
        placeholders, and each text it found something in scrubbed again."""
        counts: Counter = Counter()
        again: dict[str, str] = {}
        unique = list(dict.fromkeys(texts))
        for start in range(0, len(unique), 512):
            chunk = unique[start:start + 512]
            for text, results in zip(chunk, self._analysis(chunk, self.languages(chunk), ner=True), strict=True):
                left = _outside(text, results, [m.span() for m in PLACEHOLDERS.finditer(text)])
                if left:
                    counts.update(r.entity_type for r in left)
                    again[text] = self._replace(text, left).text
        return counts, again


def _outside(text: str, results: list, replaced: list[tuple[int, int]]) -> list:
    """Findings with what overlaps a replacement cut away: each piece left that holds a letter or digit stays a
    finding of its own ("<PERSON_1f...> Smith" leaves "Smith")."""
    if not replaced:
        return results
    from presidio_analyzer import RecognizerResult

    out = []
    for r in results:
        inside = sorted((a, b) for a, b in replaced if r.start < b and a < r.end)
        if not inside:
            out.append(r)
            continue
        pos, pieces = r.start, []
        for a, b in inside:
            pieces.append((pos, max(pos, a)))
            pos = max(pos, b)
        pieces.append((pos, r.end))
        for a, b in pieces:
            piece = text[a:b]
            if not any(c.isalnum() for c in piece):
                continue
            a += len(piece) - len(piece.lstrip(" \t\n,;:"))
            b -= len(piece) - len(piece.rstrip(" \t\n,;:"))
            out.append(RecognizerResult(r.entity_type, a, b, r.score, r.analysis_explanation, r.recognition_metadata))
    return out

