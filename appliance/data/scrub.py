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
from collections.abc import Iterable
from dataclasses import dataclass, field

from appliance import offline
from appliance.data.policy import PiiPolicy
from appliance.errors import ConfigError

PLACEHOLDER = "<{entity}>"
_PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*?(?:_[0-9a-f]{10})?>")
PARALLEL_FROM = 400  # unique texts; below this, starting worker processes costs more than it saves
_forked: Scrubber | None = None


def _scrub_part(part: list[str]) -> list[ScrubResult]:
    return _forked._scrub_unique(part)


def _parts(unique: list[str], workers: int) -> list[list[str]]:
    """Four parts a worker, so a slow part does not leave the other workers idle."""
    size = -(-len(unique) // (workers * 4))
    return [unique[i:i + size] for i in range(0, len(unique), size)]


def _in_workers(scrubber: Scrubber, unique: list[str], workers: int) -> list[ScrubResult]:
    """Scrub in forked processes that inherit the loaded pipeline (nothing is pickled but texts and results)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    global _forked
    _forked = scrubber
    parts = _parts(unique, workers)
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            return [r for part in pool.map(_scrub_part, parts) for r in part]
    finally:
        _forked = None


def _residual_part(part: list[str]) -> tuple[Counter, dict[str, str]]:
    return _forked.rescrub(part)


class PendingResidual:
    """A residual scan under way in forked workers (`Scrubber.start_residual`): `result()` waits for it and
    `close()` (which `result()` also does) stops the workers; until then the caller's process is free."""

    def __init__(self, pool=None, futures=(), done: tuple[Counter, dict[str, str]] | None = None) -> None:
        self._pool, self._futures = pool, list(futures)
        self._counts, self.rescrubbed = done if done else (None, {})

    def result(self) -> Counter:
        """What the scan found; `rescrubbed` then maps each text it found something in to that text scrubbed again."""
        if self._counts is None:
            try:
                counts: Counter = Counter()
                for future in self._futures:
                    found, again = future.result()
                    counts.update(found)
                    self.rescrubbed.update(again)
                self._counts = counts
            finally:
                self.close()
        return self._counts

    def close(self) -> None:
        global _forked
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
            _forked = None


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


class Scrubber:
    def __init__(self, policy: PiiPolicy, hmac_key: bytes | None = None) -> None:
        self.policy = policy
        self._unchanged: set[str] = set()  # texts `scrub` found nothing in
        if any(rule.operator == "hash" for rule in policy.entities.values()) and not hmac_key:
            raise ConfigError("the policy hashes entities but no HMAC key is available (needs the key passphrase)")
        self._hmac_key = hmac_key
        if importlib.util.find_spec(policy.nlp.model) is None:
            raise ConfigError(f"the policy needs the spaCy pipeline {policy.nlp.model!r}, which is not installed; "
                              "ingest will not run without its named-entity recognition")
        offline.pin_tldextract()
        logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
        _import_presidio()
        from presidio_analyzer import AnalyzerEngine, PatternRecognizer, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NlpEngineProvider
        from presidio_anonymizer import AnonymizerEngine

        from appliance.data.person_spans import echoes, settle
        from appliance.data.recognizers import shipped
        from appliance.data.recognizers.address_blocks import extend as extend_addresses

        provider = NlpEngineProvider(nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": policy.language, "model_name": policy.nlp.model}],
        })
        self.nlp_engine = provider.create_engine()
        nlp = self.nlp_engine.nlp[policy.language]
        # The small English pipeline's NER has its own embedding: everything else only costs time here. Without
        # the lemmatizer, context words are matched against lower-cased tokens (see analyze()).
        for pipe in ("parser", "tagger", "attribute_ruler", "lemmatizer", "tok2vec"):
            if pipe in nlp.pipe_names:
                nlp.disable_pipe(pipe)
        wanted = set(policy.entities)
        registry = RecognizerRegistry(supported_languages=[policy.language])
        registry.load_predefined_recognizers(languages=[policy.language], nlp_engine=self.nlp_engine)
        registry.recognizers = [r for r in registry.recognizers if wanted & set(r.supported_entities)
                                and r.name != "PhoneRecognizer"]
        self._settle_people = settle  # imported here: the recognizers package imports Presidio
        self._echoes = echoes
        self._extend_addresses = extend_addresses
        for recognizer in shipped(policy.languages):
            if wanted & set(recognizer.supported_entities):
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
        self.analyzer = AnalyzerEngine(registry=registry, nlp_engine=self.nlp_engine, context_aware_enhancer=enhancer,
                                       supported_languages=[policy.language],
                                       default_score_threshold=policy.score_threshold)
        self.anonymizer = AnonymizerEngine()
        self.entities = sorted(wanted)
        self._keep = [re.compile(k) for k in policy.keep_patterns]
        self.operators = {name: self._operator(name, rule) for name, rule in policy.entities.items()}

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

    def analyze(self, texts: list[str], batch_size: int = 64):
        """Presidio results for each text, above each entity's threshold, allow-listed terms excluded."""
        artifacts = self.nlp_engine.process_batch(texts, language=self.policy.language, batch_size=batch_size)
        out = []
        for text, nlp_artifacts in artifacts:
            nlp_artifacts.lemmas = [token.text.lower() for token in nlp_artifacts.tokens]
            # Every word is a context candidate: spaCy's stop words include "call", "first" and "name".
            nlp_artifacts.keywords = [lemma for lemma, token in zip(nlp_artifacts.lemmas, nlp_artifacts.tokens,
                                                                    strict=True)
                                      if not (token.is_punct or token.is_space)]
            results = self.analyzer.analyze(text=text, language=self.policy.language, entities=self.entities,
                                            nlp_artifacts=nlp_artifacts, allow_list=self.policy.allow_list or None)
            keep = [m.span() for k in self._keep for m in k.finditer(text)]
            kept = self._extend_addresses(text, [r for r in results if r.score >= self._threshold(r.entity_type)
                                                 and not any(r.start < end and start < r.end for start, end in keep)])
            out.append(self._echoes(text, self._settle_people(text, kept)))
        return out

    def _threshold(self, entity: str) -> float:
        rule = self.policy.entities[entity]
        return self.policy.score_threshold if rule.score_threshold is None else rule.score_threshold

    def _scrub_unique(self, unique: list[str], batch_size: int = 64) -> list[ScrubResult]:
        out = []
        for start in range(0, len(unique), 512):
            chunk = unique[start:start + 512]
            for text, results in zip(chunk, self.analyze(chunk, batch_size), strict=True):
                if not results:
                    out.append(ScrubResult(text))
                    continue
                anonymized = self.anonymizer.anonymize(text=text, analyzer_results=results, operators=self.operators)
                out.append(ScrubResult(anonymized.text, Counter(item.entity_type for item in anonymized.items)))
        return out

    def scrub(self, texts: Iterable[str], batch_size: int = 64, workers: int | None = None) -> list[ScrubResult]:
        """Scrub texts; identical texts are analysed once, and large inputs are split over the CPU cores."""
        texts = list(texts)
        unique = list(dict.fromkeys(t for t in texts if t and t.strip()))
        workers = workers or min(os.cpu_count() or 1, 4)
        if workers > 1 and len(unique) >= PARALLEL_FROM:
            results = _in_workers(self, unique, workers)
        else:
            results = self._scrub_unique(unique, batch_size)
        done = dict(zip(unique, results, strict=True))
        # A text with no finding comes back as it went in; the same analysis of it finds the same nothing, so
        # the residual scan need not repeat it.
        self._unchanged.update(t for t, r in done.items() if not r.found and r.text == t)
        return [done.get(t) or ScrubResult(t) for t in texts]

    def residual(self, texts: list[str], workers: int | None = None) -> Counter:
        """What the analyser still finds in already scrubbed texts (placeholders excluded): a full analysis of
        every distinct text this scrubber changed or never saw (one it scrubbed without a finding would only be
        analysed the same way again), split over the CPU cores for large inputs as `scrub` is."""
        return self.start_residual(texts, workers).result()

    def start_residual(self, texts: list[str], workers: int | None = None) -> PendingResidual:
        """`residual`, started in forked workers that inherit the loaded pipeline (the workers fork before this
        returns, so the caller may go on with other work); small inputs are scanned here and now."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        global _forked
        unique = list(dict.fromkeys(t for t in texts if t and t.strip() and t not in self._unchanged))
        workers = workers or min(os.cpu_count() or 1, 4)
        if workers <= 1 or len(unique) < PARALLEL_FROM:
            return PendingResidual(done=self.rescrub(unique))
        parts = _parts(unique, workers)
        _forked = self
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
        pending = PendingResidual(pool)
        try:
            pending._futures = [pool.submit(_residual_part, part) for part in parts]
        except BaseException:
            pending.close()
            raise
        return pending

    def rescrub(self, texts: list[str]) -> tuple[Counter, dict[str, str]]:
        """The residual scan of already scrubbed texts, here and now: what the analyser finds outside the
        placeholders, and each text it found something in scrubbed again (a replacement changes the words around
        a name, and spaCy's named-entity pass can see one there that it did not see before)."""
        counts: Counter = Counter()
        again: dict[str, str] = {}
        unique = list(dict.fromkeys(texts))
        for start in range(0, len(unique), 512):
            chunk = unique[start:start + 512]
            for text, results in zip(chunk, self.analyze(chunk), strict=True):
                placeholders = [m.span() for m in _PLACEHOLDER.finditer(text)]
                left = [r for r in results if not any(r.start < b and a < r.end for a, b in placeholders)]
                if left:
                    counts.update(r.entity_type for r in left)
                    again[text] = self.anonymizer.anonymize(text=text, analyzer_results=left,
                                                            operators=self.operators).text
        return counts, again
