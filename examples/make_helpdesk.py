"""Generate examples/helpdesk.jsonl: a help-desk triage task with planted FAKE personal data.

Run:  .venv/bin/python examples/make_helpdesk.py   (seeded: the same file every time)

Each record is a chat: a user reports an IT problem (with invented names, e-mail addresses, phone numbers,
employee numbers and street addresses in it), and the assistant answers in a strict three-line format that
a small base model does not produce on its own:
    CATEGORY: <ACCESS|HARDWARE|NETWORK|SOFTWARE|ACCOUNT>
    PRIORITY: <P1|P2|P3|P4>
    ACTION: <one sentence>
"""

import json
import random
from pathlib import Path

FIRST = ["Maria", "James", "Aisha", "Chen", "Olga", "Pedro", "Fatima", "Liam", "Noor", "Kenji", "Sofia", "Ravi",
         "Grace", "Tomas", "Amara", "Lukas", "Ingrid", "Omar", "Yuki", "Elena"]
LAST = ["Garcia", "Okafor", "Lindqvist", "Novak", "Haddad", "Kowalski", "Moreau", "Tanaka", "Silva", "Brennan",
        "Petrov", "Nakamura", "Adeyemi", "Fischer", "Rossi", "Dubois", "Kim", "Schmidt", "Haugen", "Costa"]
STREETS = ["Elm Street", "Maple Avenue", "Harbor Road", "Cedar Lane", "Pine Drive", "Oak Court"]
ISSUES = [
    ("ACCESS", "P2", "I can't open the shared finance folder since this morning.", "Re-grant the user's membership "
     "in the finance share group and confirm access."),
    ("ACCESS", "P3", "The badge reader on floor 3 rejects my badge.", "Re-encode the badge and check the floor 3 "
     "reader's access list."),
    ("HARDWARE", "P3", "My laptop screen flickers when I unplug the charger.", "Schedule a display cable "
     "replacement for the laptop."),
    ("HARDWARE", "P2", "The printer in room 210 jams on every job.", "Dispatch a technician to clear and service "
     "the room 210 printer."),
    ("NETWORK", "P1", "The whole sales floor has no network since 9:00.", "Escalate to the network team to restore "
     "the sales floor switch."),
    ("NETWORK", "P3", "VPN disconnects every ten minutes from home.", "Collect the VPN client logs and update the "
     "client profile."),
    ("SOFTWARE", "P3", "Excel crashes when I open the quarterly report.", "Repair the Office installation and test "
     "the report file."),
    ("SOFTWARE", "P4", "Can I get the PDF editor installed?", "Approve the license request and push the PDF editor "
     "package."),
    ("ACCOUNT", "P2", "I am locked out of my account after the password change.", "Unlock the account and walk the "
     "user through a password reset."),
    ("ACCOUNT", "P4", "Please update my job title in the directory.", "Update the directory record after HR "
     "confirms the title."),
]
SYSTEM = "You are the IT help desk triage assistant. Answer in exactly three lines: CATEGORY, PRIORITY, ACTION."


def ticket(rng: random.Random, i: int) -> dict:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    category, priority, problem, action = ISSUES[i % len(ISSUES)]
    contact = rng.choice([
        f"You can reach me at {first.lower()}.{last.lower()}@example.gov or "
        f"{rng.randint(200, 899)}-555-{rng.randint(1000, 9999)}.",
        f"My employee number is EMP-{rng.randint(10000, 99999)}.",
        f"I work from {rng.randint(10, 999)} {rng.choice(STREETS)}, Springfield, IL 627{rng.randint(10, 99)}.",
        f"Call me on +44 20 7946 0{rng.randint(100, 999)} if needed.",
    ])
    opener = rng.choice(["Hi, this is", "Hello, my name is", "Good morning, I'm", "Dear help desk, I am"])
    user = f"{opener} {first} {last}. {problem} {contact} Ticket INC{rng.randint(1000000, 9999999)}."
    answer = f"CATEGORY: {category}\nPRIORITY: {priority}\nACTION: {action}"
    return {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user},
                         {"role": "assistant", "content": answer}]}


def main() -> None:
    rng = random.Random(2026)
    out = Path(__file__).with_name("helpdesk.jsonl")
    out.write_text("".join(json.dumps(ticket(rng, i)) + "\n" for i in range(240)))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
