"""Small CoNLL-style data for token-classification tests, written the way real files come (CoNLL-2003's four
columns, -DOCSTART-, BOMs, CRLF), and a tiny BERT whose vocabulary splits some words into sub-tokens."""

from __future__ import annotations

import random
from pathlib import Path

PEOPLE = [["anna"], ["bruno", "kessler"], ["carla"], ["dmitri", "volkov"], ["emma", "stone"], ["farid"]]
PLACES = [["paris"], ["new", "york"], ["oslo"], ["lagos"], ["lima"], ["san", "jose"]]
ORGS = [["acme"], ["globex", "corp"], ["initech"]]
VERBS = ["met", "visited", "called", "left", "joined"]
FILLER = ["the", "a", "team", "in", "from", "at", "today", "yesterday", "with", "and"]


def sentences(n: int, seed: int = 0) -> list[list[tuple[str, str]]]:
    """n sentences of (word, IOB2 tag): someone did something to someone or some place, with filler words."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words: list[tuple[str, str]] = [(w, "O") for w in rng.sample(FILLER, rng.randint(0, 2))]
        words += _entity(rng, "PER", PEOPLE)
        words.append((rng.choice(VERBS), "O"))
        words += _entity(rng, "LOC", PLACES) if rng.random() < 0.5 else _entity(rng, "ORG", ORGS)
        words += [(w, "O") for w in rng.sample(FILLER, rng.randint(0, 2))]
        words.append((".", "O"))
        out.append(words)
    return out


def _entity(rng: random.Random, kind: str, pool: list[list[str]]) -> list[tuple[str, str]]:
    return [(word, f"{'B' if i == 0 else 'I'}-{kind}") for i, word in enumerate(rng.choice(pool))]


def to_iob1(tags: list[str]) -> list[str]:
    """IOB1 as CoNLL-2003 wrote it: I- everywhere, B- only where an entity follows one of its own type."""
    out, previous = [], "O"
    for tag in tags:
        if tag.startswith("B-") and not (previous != "O" and previous[2:] == tag[2:]):
            tag = "I-" + tag[2:]
        out.append(tag)
        previous = tag
    return out


def write_conll(path: Path, rows: list[list[tuple[str, str]]], *, columns: int = 2, docstart: bool = True,
                crlf: bool = False, bom_every: int = 0, blank: str = "", final_newline: bool = True,
                iob1: bool = False) -> Path:
    """CoNLL text: `columns` 2 (word, tag) or 4 (word, POS, chunk, tag); -DOCSTART- first; a BOM before every
    bom_every-th sentence (files joined with cat); `blank` as the separator line (e.g. "  \\t")."""
    end = "\r\n" if crlf else "\n"
    lines = ["-DOCSTART- -X- -X- O" if columns == 4 else "-DOCSTART- O", blank] if docstart else []
    for n, sentence in enumerate(rows):
        tags = [t for _, t in sentence]
        tags = to_iob1(tags) if iob1 else tags
        for i, ((word, _), tag) in enumerate(zip(sentence, tags, strict=True)):
            prefix = "\ufeff" if bom_every and n % bom_every == 0 and i == 0 else ""
            middle = " NN I-NP " if columns == 4 else " "
            lines.append(f"{prefix}{word}{middle}{tag}")
        lines.append(blank)
    text = end.join(lines)
    text = text if final_newline else text.rstrip("\r\n \t")
    path.write_bytes(text.encode("utf-8"))
    return path


def build_ner_model(directory: Path) -> Path:
    """A 2-layer BERT whose WordPiece vocabulary splits some names (kessler: kess ##ler, volkov: vol ##kov)."""
    from tests.conftest import build_tiny_model

    whole = sorted({w for group in (PEOPLE, PLACES, ORGS) for name in group for w in name} - {"kessler", "volkov"}
                   | set(VERBS) | set(FILLER) | {".", "kess", "vol"})
    return build_tiny_model(directory, [*whole, "##ler", "##kov"], max_length=64)
