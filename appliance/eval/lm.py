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

        from appliance.train.engines import quiet

        quiet()
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
        lm-evaluation-harness does)."""
        torch, tok = self.torch, self.tokenizer
        encoded = []
        for context, continuation in pairs:
            c = tok(context, add_special_tokens=False)["input_ids"]
            x = tok(continuation, add_special_tokens=False)["input_ids"]
            encoded.append((c + x, len(c), len(x)))
        out: list[tuple[float, int]] = []
        for start in range(0, len(encoded), self.batch_size):
            batch = encoded[start:start + self.batch_size]
            # Left padding puts every continuation at the end, so the LM head runs on the last positions only.
            width = max(len(ids) for ids, _, _ in batch)
            keep = max(n for _, _, n in batch) + 1
            input_ids = torch.full((len(batch), width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for i, (ids, _, _) in enumerate(batch):
                input_ids[i, width - len(ids):] = torch.tensor(ids)
                mask[i, width - len(ids):] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            with torch.no_grad():
                logits = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                                    logits_to_keep=keep).logits.float()
            for i, (ids, _, n_cont) in enumerate(batch):
                rows = logits[i, keep - n_cont - 1:keep - 1].log_softmax(-1)
                targets = torch.tensor(ids[len(ids) - n_cont:])
                out.append((float(-rows[torch.arange(n_cont), targets].sum()), n_cont))
        return out
