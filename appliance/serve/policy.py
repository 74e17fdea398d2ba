"""The serving policy (`policies/serving.yaml`): per-user limits (a user's own, set with `users limit`, replace
them field by field), what the audit trail keeps of each request's text, and the output filter. Validated
strictly; every error is reported at once."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(_Strict):
    requests_per_minute: float = Field(default=600, gt=0)
    burst: int = Field(default=60, ge=1)
    max_concurrent: int = Field(default=8, ge=1)
    max_request_bytes: int = Field(default=65536, ge=256)
    max_tokens: int = Field(default=4096, ge=1)
    default_max_tokens: int = Field(default=256, ge=1)
    over_max_tokens: Literal["clamp", "refuse"] = "clamp"

    @model_validator(mode="after")
    def _default_within_max(self) -> Limits:
        if self.default_max_tokens > self.max_tokens:
            raise ValueError("default_max_tokens must not exceed max_tokens")
        return self


class HotAdapter(_Strict):
    merge_after_requests: int = Field(default=8, ge=0)
    window_seconds: float = Field(default=120.0, gt=0)


class Server(_Strict):
    """The HTTP server in front: connections at once (beyond: 503), and how long a client may take to send."""
    max_connections: int = Field(default=256, ge=1)
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    keep_alive_seconds: float = Field(default=5.0, gt=0)
    auth_failures_every_seconds: float = Field(default=60.0, gt=0, le=3600)


class LlamaServer(_Strict):
    """llama-server: requests decoded together (slots), and how long a replaced instance may finish its requests."""
    parallel: int = Field(default=16, ge=1, le=64)
    drain_seconds: float = Field(default=600.0, ge=0)


class Quantization(_Strict):
    """The GGUF type a Hugging Face model is quantized to at import, by its parameter count."""
    large: Literal["Q4_0", "Q4_K_M", "Q5_0", "Q5_K_M", "Q6_K", "Q8_0", "F16", "BF16"] = "Q4_K_M"
    small: Literal["Q4_0", "Q4_K_M", "Q5_0", "Q5_K_M", "Q6_K", "Q8_0", "F16", "BF16"] = "Q8_0"
    large_from_parameters: int = Field(default=1_000_000_000, ge=0)


class ServingPolicy(_Strict):
    version: Literal[1] = 1
    limits: Limits = Limits()
    audit_text: Literal["none", "digest", "scrubbed"] = "digest"
    output_filter: Literal["off", "flag", "redact"] = "off"
    sync_seconds: float = Field(default=1.0, gt=0, le=3600)
    hot_adapter: HotAdapter = HotAdapter()
    server: Server = Server()
    # `engine`, its name before: installed policies written then still load (both at once is refused)
    llama_server: LlamaServer = Field(default=LlamaServer(), validation_alias=AliasChoices("llama_server", "engine"))
    quantization: Quantization = Quantization()

    @field_validator("output_filter", mode="before")
    @classmethod
    def _unquoted_off(cls, value):
        return "off" if value is False else value  # YAML reads a bare `off` as false

