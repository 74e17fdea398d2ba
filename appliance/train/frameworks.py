"""Training frameworks: Unsloth's FastLanguageModel path, or plain transformers + PEFT. Both hand a PEFT model
to TRL's trainers; `auto` picks per device and method what was measured faster (`choose`), and says why."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from appliance.chatter import captured, silence
from appliance.errors import ConfigError
from appliance.train.recipe import Recipe


@dataclass(frozen=True)
class Choice:
    framework: str  # unsloth or trl
    reason: str


def _unsloth_importable() -> str | None:
    """None when Unsloth imports here; else why not."""
    try:
        with captured():
            import unsloth  # noqa: F401  (Unsloth must be imported before transformers, trl and peft)
    except Exception as exc:  # Unsloth raises many kinds on a broken install
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def choose(requested: str, recipe: Recipe, world_size: int = 1, cuda: bool | None = None) -> Choice:
    """The framework a run trains with, and why. `auto` takes what was measured faster for the device and method
    (`bench/train_bench.py`, docs/benchmarks.md): Unsloth for SFT on a CUDA GPU; TRL on CPU, in fp32 with the
    frozen base's linear layers in bf16 where the CPU has native bf16 (`frozen_in_bf16`), where Unsloth's path
    casts everything to bf16 (as fast, but a higher loss after the same steps) and costs its imports. On CPU,
    Unsloth is not imported."""
    if requested not in ("auto", "unsloth", "trl"):
        raise ConfigError(f"{requested!r}: one of auto, unsloth, trl", param="framework")
    on_cpu = not (_cuda() if cuda is None else cuda)
    note = _frozen_bf16_note(recipe) if on_cpu else ""
    if requested == "trl":
        return Choice("trl", "requested: transformers + PEFT + TRL" + note)
    if world_size > 1:
        if requested == "unsloth":
            raise ConfigError("Unsloth trains in one process; use --framework trl for a distributed run")
        return Choice("trl", f"auto: a distributed run ({world_size} processes) uses transformers + PEFT + TRL{note}")
    supported = recipe.method == "sft"
    if requested == "unsloth":
        if not supported:
            raise ConfigError(f"the appliance's Unsloth path trains sft only, not {recipe.method}; use --framework trl")
        problem = _unsloth_importable()
        if problem:
            raise ConfigError(f"Unsloth does not import here ({problem}); use --framework trl")
        return Choice("unsloth", "requested")
    if not supported:
        return Choice("trl", f"auto: the appliance's Unsloth path trains sft only, the recipe is {recipe.method}")
    if on_cpu:
        return Choice("trl", "auto: on CPU, TRL in fp32 (measured: Unsloth's CPU path is no faster at equal loss)"
                             + note)
    problem = _unsloth_importable()
    if problem:
        return Choice("trl", f"auto: Unsloth does not import ({problem})")
    return Choice("unsloth", "auto: on a CUDA GPU, Unsloth for sft (bf16, 4-bit for QLoRA)")


def frozen_in_bf16(recipe: Recipe, cuda: bool) -> bool:
    """Whether the frozen base's linear layers run in bf16 (`frozen_bf16`): LoRA on a CPU with native bf16."""
    from appliance.train.frozen_bf16 import native_bf16

    return not cuda and recipe.adapter.kind == "lora" and native_bf16()


def _frozen_bf16_note(recipe: Recipe) -> str:
    if frozen_in_bf16(recipe, cuda=False):
        return ", the frozen base's linear layers in bf16 (this CPU has native bf16; adapters, loss and sums fp32)"
    return ""


def weights_dtype(cuda: bool, bf16_supported: bool) -> str:
    """The dtype of the base weights (and of bitsandbytes' 4-bit compute): bf16 on a GPU that has it, as the
    Trainer's `bf16` mixed precision then runs; fp32 on CPU and on a GPU without bf16 (fp16 LoRA weights would
    not train under the Trainer's fp16 scaler)."""
    return "bfloat16" if cuda and bf16_supported else "float32"


def load(choice: Choice, hf_dir: Path, recipe: Recipe):
    """(model with a fresh LoRA adapter, tokenizer)."""
    from appliance.models.architectures import target_modules

    silence()
    a = recipe.adapter
    targets = target_modules(hf_dir, list(a.target_modules))
    if choice.framework == "unsloth":
        with captured():  # Unsloth prints banners of its own
            from unsloth import FastLanguageModel

            model, tokenizer = FastLanguageModel.from_pretrained(
                model_name=str(hf_dir), max_seq_length=recipe.max_seq_length, load_in_4bit=a.kind == "qlora",
                dtype=None, local_files_only=True)
            model = FastLanguageModel.get_peft_model(
                model, r=a.rank, lora_alpha=a.alpha, lora_dropout=a.dropout, target_modules=targets,
                bias="none", use_gradient_checkpointing=False, random_state=recipe.seed)
        return model, _with_template(tokenizer, recipe)
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    if tokenizer.pad_token is None:  # ORPO pads explicitly; the GGUF-derived tokenizer names no pad token
        tokenizer.pad_token = tokenizer.eos_token
    cuda = torch.cuda.is_available()
    dtype = getattr(torch, weights_dtype(cuda, cuda and torch.cuda.is_bf16_supported()))
    bf16_base = frozen_in_bf16(recipe, cuda)
    if a.kind == "qlora":
        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)
        model = AutoModelForCausalLM.from_pretrained(hf_dir, quantization_config=quant, dtype=dtype)
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    elif bf16_base:  # loaded in bf16: the base's weights never take fp32's memory
        model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.bfloat16)
    else:
        model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=dtype)
    config = LoraConfig(r=a.rank, lora_alpha=a.alpha, lora_dropout=a.dropout,
                        target_modules=targets, bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, config)
    if bf16_base:
        from appliance.train import frozen_bf16

        frozen_bf16.apply(model)
    return model, _with_template(tokenizer, recipe)


def _with_template(tokenizer, recipe: Recipe):
    """The recipe's chat template, where it names one, in place of the model's (the adapter is saved with it)."""
    if recipe.chat_template:
        tokenizer.chat_template = recipe.chat_template
    return tokenizer


def trainer_for(recipe: Recipe, model, tokenizer, rows: list[dict], out_dir: Path, max_steps: int, callbacks):
    """TRL's trainer for the recipe's method, writing nothing itself (the callbacks checkpoint) and printing
    nothing itself (the progress callback reports)."""
    trainer = _trainer(recipe, model, tokenizer, rows, out_dir, max_steps, callbacks)
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer


def trainer_args(recipe: Recipe, out_dir: Path, max_steps: int):
    """The Trainer's arguments for `recipe` (TRL's config class of its method)."""
    import torch

    gpu = torch.cuda.is_available()
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:  # torchrun or accelerate launch: DDP over NCCL on GPUs, gloo on CPUs
        common_ddp = dict(ddp_backend="nccl" if gpu else "gloo", ddp_find_unused_parameters=False)
    else:
        common_ddp = {}
    common = dict(**common_ddp,
        use_cpu=not gpu, bf16=gpu and torch.cuda.is_bf16_supported(),
        output_dir=str(out_dir), max_steps=max_steps, per_device_train_batch_size=recipe.batch_size,
        gradient_accumulation_steps=recipe.gradient_accumulation, learning_rate=recipe.schedule.learning_rate,
        lr_scheduler_type=recipe.schedule.scheduler, warmup_steps=recipe.schedule.warmup_steps,
        weight_decay=recipe.schedule.weight_decay, logging_steps=1, save_strategy="no", report_to="none",
        seed=recipe.seed, data_seed=recipe.seed, disable_tqdm=True, dataloader_num_workers=0,
        include_num_input_tokens_seen="non_padding",  # True counts padding too ("all")
        # TRL turns this on by default; only a recipe that asks for it pays the recomputation.
        gradient_checkpointing=recipe.gradient_checkpointing,
    )
    if recipe.method == "sft":
        from trl import SFTConfig

        return SFTConfig(**common, max_length=recipe.max_seq_length, packing=recipe.packing)
    if recipe.method == "dpo":
        from trl import DPOConfig

        return DPOConfig(**common, beta=recipe.beta, max_length=recipe.max_seq_length)
    from trl.experimental.orpo import ORPOConfig

    return ORPOConfig(**common, beta=recipe.beta, max_length=recipe.max_seq_length)


def _trainer(recipe: Recipe, model, tokenizer, rows: list[dict], out_dir: Path, max_steps: int, callbacks):
    from datasets import Dataset

    from appliance.train import cpu_loss

    cpu_loss.install()
    args = trainer_args(recipe, out_dir, max_steps)
    dataset = Dataset.from_list(rows)
    if recipe.method == "sft":
        from trl import SFTTrainer

        return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                          callbacks=callbacks)
    if recipe.method == "dpo":
        from trl import DPOTrainer

        return DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                          callbacks=callbacks)
    from trl.experimental.orpo import ORPOTrainer

    return ORPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                       callbacks=callbacks)
