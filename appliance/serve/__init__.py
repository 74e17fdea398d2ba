"""Serving: llama.cpp (CPU) and vLLM (GPU) backends; the OpenAI-compatible gateway."""
