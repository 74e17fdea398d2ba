"""Serving: whether the gateway is up and ready, and its own counters (adapters loaded, requests, tokens)."""

from __future__ import annotations

import os

import streamlit as st

from appliance.console.widgets import table
from appliance.context import Context
from appliance.identity.roles import require


def gateway_url() -> str:
    """Where `appliance console --gateway` said the gateway listens."""
    return os.environ.get("APPLIANCE_GATEWAY_URL", "http://127.0.0.1:8000").rstrip("/")


def render(ctx: Context) -> None:
    from appliance.serve.status import GatewayDown, probe

    require(ctx, "read", "serving", "gateway")
    url = gateway_url()
    st.markdown(f"Gateway: `{url}` (`appliance serve`)")
    try:
        status = probe(url)
    except GatewayDown as exc:
        st.warning(str(exc))
        return
    st.markdown(f"**Status**: {'ready' if status.ready else 'starting'}; {status.health}")
    counts = {"adapters loaded": status.total("appliance_adapters_loaded"),
              "requests": status.total("appliance_requests_total"),
              "tokens": status.total("appliance_tokens_total"),
              "backend restarts": status.total("appliance_backend_restarts_total")}
    for column, (label, value) in zip(st.columns(len(counts)), counts.items(), strict=True):
        column.metric(label, int(value))
    table([{"metric": s.name, "labels": s.label_text, "value": s.value} for s in status.samples], "metrics_table")
