"""Write a tiny random-weight transformers model folder of a supported architecture, for trying `models import`
without a download: `python scripts/make_tiny_model.py qwen2 DEST [--architecture NAME]`.

The weights are random (the model says nothing useful); the shapes, tokenizer and chat template are real, so
llama.cpp's converter, its quantizer, training and serving treat it as they would the organisation's model."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' save bar
for _noisy in ("torchao", "torch.utils._pytree"):  # import-time chatter of optional kernels
    logging.getLogger(_noisy).setLevel(logging.ERROR)

from tests.tiny_models import ARCHITECTURES, build  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("arch", choices=ARCHITECTURES)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--architecture", help="write this class name into config.json instead (to see a refusal)")
    args = parser.parse_args()
    folder = build(args.arch, args.dest, args.dest.parent / f".{args.dest.name}-tokenizers")
    if args.architecture:
        config = json.loads((folder / "config.json").read_text())
        config["architectures"] = [args.architecture]
        (folder / "config.json").write_text(json.dumps(config, indent=2))
    print(f"{folder}: {args.arch}, random weights, {sum(p.stat().st_size for p in folder.iterdir()) / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
