"""Write appliance/resources/english_words.txt.gz: the words of Webster's Second New International Dictionary (the
`web2` list, public domain, as the MIT `english-words` package carries it) written in lower case and letters only,
one a line, sorted. The scrubber reads it to tell a capitalised name from a capitalised English word: a given name
of another country counts alone only when it is not also an English word ("Sven", not "Storm" or "Edit").

Run:  .venv/bin/python scripts/english_word_list.py   (english-words is a development dependency; the list is data)
"""

from __future__ import annotations

import gzip
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "appliance" / "resources" / "english_words.txt.gz"


def collect() -> list[str]:
    from english_words import get_english_words_set

    # Proper nouns are capitalised in web2: only its lower-case entries are common words.
    return sorted(w for w in get_english_words_set(["web2"]) if w.isalpha() and w.islower())


if __name__ == "__main__":
    words = collect()
    # mtime=0: the same list gives the same bytes on every run
    OUT.write_bytes(gzip.compress("".join(f"{w}\n" for w in words).encode("utf-8"), mtime=0))
    print(f"wrote {len(words)} words to {OUT}")
