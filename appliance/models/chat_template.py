"""A model's chat template, checked at import: rendered on a sample conversation in the sandbox transformers
renders it in for training and evaluation (Jinja's immutable sandbox), so a template that reaches for Python
attributes, or one that cannot render a plain conversation, is refused before the model is registered.

llama.cpp renders the template the GGUF carries with its own Jinja engine (no Python objects at all).
"""

from __future__ import annotations

from pathlib import Path

from appliance.errors import InputError

SAMPLE = [{"role": "system", "content": "You are a help-desk assistant."},
          {"role": "user", "content": "How do I reset my password?"},
          {"role": "assistant", "content": "Open the portal and choose Reset."},
          {"role": "user", "content": "Thanks."}]


def render(template: str, messages: list[dict], *, add_generation_prompt: bool = True) -> str:
    """The template rendered as transformers renders it (sandboxed); Jinja's errors propagate."""
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template(conversations=[messages], chat_template=template,
                                        add_generation_prompt=add_generation_prompt)
    return rendered[0]


def check(template: str, where: Path | str) -> None:
    """Refuse, naming the folder, a template the sandbox stops or that cannot render a plain conversation."""
    from jinja2.exceptions import SecurityError, TemplateError

    try:
        render(template, SAMPLE)
    except SecurityError as exc:
        raise InputError(f"{where}: chat template refused: it reaches outside the template sandbox ({exc})") from None
    except TemplateError as exc:
        # Templates that refuse a system turn on purpose (`raise_exception`) are still usable without one.
        try:
            render(template, SAMPLE[1:])
        except SecurityError as inner:
            raise InputError(f"{where}: chat template refused: it reaches outside the template sandbox "
                             f"({inner})") from None
        except Exception:  # noqa: BLE001 - any failure of a template is the template's
            raise InputError(f"{where}: chat template cannot render a conversation: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - 1/0, a filter's TypeError...: the template is broken
        raise InputError(f"{where}: chat template cannot render a conversation: {type(exc).__name__}: {exc}") from None
