"""OpenAI's two completion endpoints, shared by the gateway and the binding's server process."""

from fastapi import Request


def completion_routes(app, complete) -> None:
    """OpenAI's two completion endpoints onto `complete(route, request)`, route "chat" or "text"."""

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        return await complete("chat", request)

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await complete("text", request)
