"""Base-model registry: import (embedded, GGUF file, Hugging Face folder), digests, verification."""
