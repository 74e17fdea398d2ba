"""What every console page draws the same way: a page's entry in the menu, a refusal shown as one line, a table,
figures rounded for reading, and audit events as rows."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import streamlit as st

from appliance.context import Context
from appliance.errors import ApplianceError
from appliance.terminal import safe


@dataclass(frozen=True)
class Page:
    title: str
    permission: str  # what the role needs to see the page at all
    render: Callable[[Context], None]


_MARKDOWN = re.compile(r"([\\`*_\[\]<>#|~$])")  # what makes markdown of text: links, emphasis, HTML, math


def plain(text) -> str:
    """Text for a Streamlit message, which reads markdown: shown as written, escapes and markdown alike."""
    return _MARKDOWN.sub(r"\\\1", safe(text))


@contextmanager
def shown_errors():
    """A refused or invalid action becomes one error line on the page (the library has audited it)."""
    try:
        yield
    except ApplianceError as exc:
        label = exc.param.replace("_", " ").capitalize() if exc.param else None
        st.error(plain(exc.render(label, 1)))


def table(rows: list[dict], key: str) -> None:
    if rows:
        st.dataframe(rows, hide_index=True, width="stretch", key=key)
    else:
        st.caption("nothing yet")


def figure(value, digits: int = 3):
    """A measured number as an officer reads it: 0.020000000000000018 is 0.02; anything else as it is."""
    if isinstance(value, float):
        return round(value, digits)
    return value


def event_rows(events: list[dict]) -> list[dict]:
    return [{"seq": e["seq"], "time": e["ts"][:19], "actor": safe(e["actor"]), "action": safe(e["action"]),
             "outcome": e["outcome"], "object": safe(f"{e['object_type']}:{e['object_id']}"),
             "reason": safe(e["reason"])} for e in events]
