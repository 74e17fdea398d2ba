"""SQLModel tables. Their shape is created by migrations.py; a test checks the two agree."""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class RegisteredModel(SQLModel, table=True):
    __tablename__ = "base_model"

    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(unique=True, max_length=128)
    source: str = Field(max_length=32)  # "embedded" or "path"
    origin: str  # the package and version, or the path it was imported from
    architecture: str | None = Field(default=None, max_length=64)
    gguf_file: str | None = None  # relative to the model's folder
    hf_dir: str | None = None  # relative to the model's folder
    digest: str = Field(max_length=64)  # sha256 over the canonical manifest of the stored files
    source_digest: str = Field(max_length=64)  # the same over what was imported, to recognise a re-import
    total_bytes: int
    imported_at: str = Field(max_length=32)
    imported_by: str = Field(max_length=128)


class ModelFile(SQLModel, table=True):
    __tablename__ = "model_file"

    model_id: str = Field(primary_key=True, foreign_key="base_model.id", max_length=32)
    relpath: str = Field(primary_key=True)
    sha256: str = Field(max_length=64)
    size: int
