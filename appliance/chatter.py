"""Library chatter, silenced in one place before the libraries that emit it are imported: torchao's "Failed to
load ... .so" lines, torch and transformers deprecation warnings, transformers' and TRL's notices, Hugging Face
progress bars and tqdm's carriage-return bars. The appliance prints its own progress, one line per step.

`APPLIANCE_DEBUG=1` shows everything (nothing here is applied)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from collections.abc import Iterator

# Loggers whose warnings are notices to a library's developers, not to someone running the appliance.
LOGGERS = ("torchao", "torch", "torch.utils._pytree", "torch.distributed", "transformers", "trl", "peft", "datasets",
           "accelerate", "huggingface_hub", "unsloth", "unsloth_zoo", "bitsandbytes", "sentence_transformers",
           "presidio-analyzer", "presidio-anonymizer", "spacy", "streamlit", "httpx")
# Python warnings raised from inside these packages (a warning about the appliance's own code still shows).
MODULES = (r"(torch|torchao|transformers|trl|peft|datasets|accelerate|unsloth|unsloth_zoo|bitsandbytes|"
           r"huggingface_hub|spacy|thinc|presidio_analyzer|presidio_anonymizer|pydantic|sklearn|streamlit)(\..*)?")
ENVIRONMENT = {
    "TQDM_DISABLE": "1",                       # every tqdm bar (transformers, datasets, TRL, Unsloth)
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "DATASETS_VERBOSITY": "error",
    "TOKENIZERS_PARALLELISM": "false",         # the fork warning of Hugging Face tokenizers
    "UNSLOTH_DISABLE_STATISTICS": "1",
}


def debugging() -> bool:
    return os.environ.get("APPLIANCE_DEBUG", "") not in ("", "0")


def silence() -> None:
    """Quiet the libraries for this process and the processes it starts; a no-op under APPLIANCE_DEBUG=1."""
    if debugging():
        return
    for key, value in ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for category in (DeprecationWarning, FutureWarning, UserWarning, RuntimeWarning):
        warnings.filterwarnings("ignore", category=category, module=MODULES)


@contextlib.contextmanager
def captured() -> Iterator[None]:
    """Hold back what a library prints to stdout and stderr itself (Unsloth's banners): shown under
    APPLIANCE_DEBUG=1, and on stderr when the block fails, so that nothing that explains a failure is lost."""
    if debugging():
        yield
        return
    held = io.StringIO()
    try:
        with contextlib.redirect_stdout(held), contextlib.redirect_stderr(held):
            yield
    except BaseException:
        sys.stderr.write(held.getvalue())
        raise
