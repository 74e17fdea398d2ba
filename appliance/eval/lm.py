"""A base model with its adapter loaded once (transformers + PEFT), switchable between "base" and "adapter",
with batched greedy or sampled generation and batched log-likelihood scoring."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


class AdapterLM:
    def __init__(self, base_dir: Path, adapter_dir: Path | None, batch_size: int = 16,
                 generate_batch: int = 64) -> None:
        """With `adapter_dir` None the model is the base alone and "adapter" is not available."""
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from appliance.chatter import silence

        silence()
        self.torch = torch
        self.batch_size = batch_size
        self.generate_batch = generate_batch  # decoding on CPU is bound by reading the weights: share each read
        with_tokenizer = adapter_dir and (adapter_dir / "tokenizer_config.json").is_file()
        self.tokenizer = AutoTokenizer.from_pretrained(adapter_dir if with_tokenizer else base_dir)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
        self.has_adapter = adapter_dir is not None
        self.model = (PeftModel.from_pretrained(base, adapter_dir) if adapter_dir else base).eval()

    @contextlib.contextmanager
    def use(self, which: str) -> Iterator[None]:
        """Within the block the model is the base alone ("base") or base + adapter ("adapter")."""
        if which == "base" and not self.has_adapter:
            yield
            return
        if which == "base":
            with self.model.disable_adapter():
                yield
            return
        self.model.merge_adapter()  # one matmul per layer instead of three while generating and scoring
        try:
            yield
        finally:
            self.model.unmerge_adapter()

    def chat_prompt(self, messages: list[dict]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def generate(self, prompts: list[str], max_new_tokens: int, *, sample: bool = False, seed: int = 0) -> list[str]:
        """Continuations of each prompt, in batches with left padding; greedy unless `sample`."""
        torch, tok = self.torch, self.tokenizer
        tok.padding_side = "left"
        out: list[str] = []
        torch.manual_seed(seed)
        for start in range(0, len(prompts), self.generate_batch):
            batch = tok(prompts[start:start + self.generate_batch], return_tensors="pt", padding=True,
                        add_special_tokens=False)
            options = dict(do_sample=True, temperature=0.8, top_p=0.95) if sample else dict(do_sample=False)
            with torch.no_grad():
                ids = self.model.generate(**batch, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                                          **options)
            width = batch["input_ids"].shape[1]
            out.extend(tok.decode(row[width:], skip_special_tokens=True).strip() for row in ids)
        return out

    def losses(self, pairs: list[tuple[str, str]]) -> list[tuple[float, int]]:
        """For each (context, continuation): the summed negative log-likelihood of the continuation's tokens
        given the context, and how many tokens that is (context and continuation tokenised apart, as
        lm-evaluation-harness does).

        Pairs that share a context (a multiple-choice item's options, a canary's candidates) share its forward
        pass: each distinct context runs once, and its key/value cache is reused by every continuation."""
        tok = self.tokenizer
        index: dict[str, int] = {}
        contexts: list[list[int]] = []
        items: list[tuple[int, list[int]]] = []
        for context, continuation in pairs:
            if context not in index:
                index[context] = len(contexts)
                contexts.append(tok(context, add_special_tokens=False)["input_ids"])
            items.append((index[context], tok(continuation, add_special_tokens=False)["input_ids"]))
        by_context: list[list[int]] = [[] for _ in contexts]
        for i, (c, _) in enumerate(items):
            by_context[c].append(i)
        out: list[tuple[float, int]] = [(0.0, 0)] * len(items)
        batch: list[int] = []
        rows = 0
        for c in range(len(contexts)):  # contexts in order, batched until their continuations fill a batch
            batch.append(c)
            rows += len(by_context[c])
            if len(batch) == self.batch_size or rows >= 4 * self.batch_size or c == len(contexts) - 1:
                self._score(contexts, items, batch, by_context, out)
                batch, rows = [], 0
        return out

    def _score(self, contexts, items, batch: list[int], by_context, out) -> None:
        """Score the continuations of the contexts in `batch` (indices into `contexts`) into `out`."""
        torch, tok = self.torch, self.tokenizer
        width = max(len(contexts[c]) for c in batch)
        ids = torch.full((len(batch), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, c in enumerate(batch):  # left padding: every context ends at the last position
            ids[row, width - len(contexts[c]):] = torch.tensor(contexts[c])
            mask[row, width - len(contexts[c]):] = 1
        with torch.no_grad():
            first = self.model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                               use_cache=True, logits_to_keep=1)
        first_logp = first.logits[:, -1].float().log_softmax(-1)  # the first continuation token's distribution
        members = [(row, i) for row, c in enumerate(batch) for i in by_context[c] if items[i][1]]
        if not members:
            return
        span = max(len(items[i][1]) for _, i in members)
        source = torch.tensor([row for row, _ in members])
        cont = torch.full((len(members), span), tok.pad_token_id, dtype=torch.long)
        cont_mask = torch.zeros((len(members), span), dtype=torch.long)
        for r, (_, i) in enumerate(members):  # right padding: pads come after every real token
            x = items[i][1]
            cont[r, :len(x)] = torch.tensor(x)
            cont_mask[r, :len(x)] = 1
        cache = first.past_key_values
        cache.reorder_cache(source)  # each continuation row gets its context's keys and values
        start = mask.sum(-1)[source].unsqueeze(1)
        with torch.no_grad():
            logits = self.model(input_ids=cont, attention_mask=torch.cat([mask[source], cont_mask], dim=1),
                                position_ids=start + torch.arange(span).unsqueeze(0), past_key_values=cache,
                                use_cache=False).logits.float()
        for r, (row, i) in enumerate(members):
            x = items[i][1]
            total = float(first_logp[row, x[0]])
            if len(x) > 1:
                steps = logits[r, :len(x) - 1].log_softmax(-1)
                total += float(steps[torch.arange(len(x) - 1), torch.tensor(x[1:])].sum())
            out[i] = (-total, len(x))
