"""What a signed checkpoint is: a tree head (size, root) with its time, the audit key that signed it and the
signature over `body()`. A leaf: the appender signs them, the anchors keep them, verification checks them."""

from __future__ import annotations

from dataclasses import dataclass

CHECKPOINT_HEADER = "appliance audit checkpoint v1"


@dataclass(frozen=True)
class Checkpoint:
    tree_size: int
    root: str  # hex
    ts: str
    key_id: str
    signature: str  # base64 DER ECDSA-SHA256 over body()

    def body(self) -> bytes:
        return f"{CHECKPOINT_HEADER}\n{self.tree_size}\n{self.root}\n{self.ts}\n".encode()

    def as_dict(self) -> dict:
        return {"format": CHECKPOINT_HEADER, "tree_size": self.tree_size, "root": self.root, "ts": self.ts,
                "key_id": self.key_id, "signature": self.signature}


def checkpoint_of(row) -> Checkpoint:
    """A checkpoint from its `audit_checkpoint` row."""
    return Checkpoint(**{**row._mapping, "tree_size": int(row.tree_size)})
