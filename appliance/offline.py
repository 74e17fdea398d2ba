"""Zero egress: hub libraries offline, telemetry off, tldextract on its bundled snapshot.

`enforce()` runs when the `appliance` package is imported, before any hub library is imported, and
only sets values the operator has not set explicitly to the same effect. The variables are listed so
`doctor` can report them and tests can assert them.
"""

from __future__ import annotations

import os

# Each variable and the value that keeps its library offline or quiet.
OFFLINE_ENV: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "DO_NOT_TRACK": "1",
    "DISABLE_TELEMETRY": "1",
    "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    "STREAMLIT_SERVER_HEADLESS": "true",
    "WANDB_MODE": "disabled",
    "WANDB_DISABLED": "true",
    "COMET_MODE": "disabled",
    "UNSLOTH_DISABLE_STATISTICS": "1",
    "UNSLOTH_OFFLINE": "1",
    "UNSLOTH_LLAMA_CPP_OFFLINE": "1",
    "BITSANDBYTES_NOWELCOME": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "SPACY_WARNING_IGNORE": "W095",
}

# Variables whose value must be exactly the one above for the install to count as offline.
REQUIRED = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY",
            "STREAMLIT_BROWSER_GATHER_USAGE_STATS", "UNSLOTH_DISABLE_STATISTICS")


def enforce() -> None:
    """Force every hub library offline and every telemetry off for this process and its children."""
    for name, value in OFFLINE_ENV.items():
        if name in REQUIRED:
            os.environ[name] = value
        else:
            os.environ.setdefault(name, value)


def offline_violations() -> list[str]:
    """Names of required variables that do not hold their offline value."""
    return [name for name in REQUIRED if os.environ.get(name) != OFFLINE_ENV[name]]


def pin_tldextract() -> None:
    """Make every `tldextract.extract` call use the Public Suffix List snapshot shipped in the package.

    tldextract's default extractor downloads the list on first use; Presidio's email and URL
    recognizers call the module-level `tldextract.extract`, so the default extractor is replaced.
    """
    import tldextract
    import tldextract.tldextract as impl

    offline = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)
    impl.TLD_EXTRACTOR = offline
    tldextract.extract = offline.__call__
    impl.extract = offline.__call__


def tldextract_is_offline() -> bool:
    import tldextract.tldextract as impl

    return tuple(getattr(impl.TLD_EXTRACTOR, "suffix_list_urls", ("?",))) == ()
