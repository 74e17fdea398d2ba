"""Generate examples/preferences.jsonl: preference pairs for DPO and ORPO on the help-desk triage task.

Run:  .venv/bin/python examples/make_preferences.py   (seeded: the same file every time)

The prompt is a ticket (with the same invented personal data as helpdesk.jsonl); `chosen` is the strict
three-line triage answer, `rejected` a chatty answer that ignores the format.
"""

import json
import random
from pathlib import Path

from make_helpdesk import SYSTEM, ticket

CHATTY = ["Thanks for reaching out! I'm sorry to hear that. Have you tried turning it off and on again? Let me know.",
          "Oh no, that sounds frustrating. I think someone from IT will probably look at it at some point soon.",
          "Hi! I can definitely help with that. It might be a permissions thing, or maybe the network. Hard to say."]


def main() -> None:
    rng = random.Random(7)
    rows = []
    for i in range(80):
        record = ticket(rng, i)
        prompt = f"{SYSTEM}\n\n{record['messages'][1]['content']}"
        rows.append({"prompt": prompt, "chosen": record["messages"][2]["content"], "rejected": rng.choice(CHATTY)})
    out = Path(__file__).with_name("preferences.jsonl")
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
