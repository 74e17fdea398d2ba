"""Playground: one prompt to two served models side by side, through the gateway with the user's own API token."""

from __future__ import annotations

import httpx
import streamlit as st

from appliance.console.views.serving import gateway_url
from appliance.context import Context
from appliance.identity.roles import require


def render(ctx: Context) -> None:
    require(ctx, "serve.query", "model", "*")
    url = gateway_url()
    st.caption(f"Asks the gateway at {url} with your API token (`appliance tokens create`); the token stays in "
               "this browser session only and every request is audited under your name.")
    token = st.text_input("API token", type="password", key="play_token")
    if not token:
        return
    headers = {"Authorization": f"Bearer {token}"}
    try:
        listed = httpx.get(url + "/v1/models", headers=headers, timeout=5)
    except httpx.HTTPError as exc:
        st.warning(f"the gateway does not answer at {url}: {type(exc).__name__}")
        return
    if listed.status_code != 200:
        st.error(listed.json().get("error", {}).get("message", listed.text))
        return
    models = [m["id"] for m in listed.json()["data"]]
    left, right = st.columns(2)
    first = left.selectbox("Left", models, key="play_left")
    second = right.selectbox("Right", models, index=min(1, len(models) - 1), key="play_right")
    prompt = st.text_area("Prompt", key="play_prompt")
    if st.button("Ask both", key="play_ask") and prompt.strip():
        for column, model in ((left, first), (right, second)):
            reply = httpx.post(url + "/v1/chat/completions", headers=headers, timeout=300,
                               json={"model": model, "messages": [{"role": "user", "content": prompt}],
                                     "max_tokens": 200, "temperature": 0})
            body = reply.json()
            if reply.status_code == 200:
                column.markdown(f"**{model}**")
                column.write(body["choices"][0]["message"]["content"])
            else:
                column.error(body.get("error", {}).get("message", reply.text))
