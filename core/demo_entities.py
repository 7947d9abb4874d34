"""Demo data for token-classification: news-style sentences with people, places and organisations tagged in IOB2,
written as CoNLL files (-DOCSTART-, a word and its tag per line, a blank line between sentences).

The test split draws its names from pools the training split never sees, so a model scores there only by reading
the context (who "said", where something happened, which company "announced"), not by remembering names.
Deterministic (fixed seeds), like the other demos.
"""

from __future__ import annotations

import random
from pathlib import Path

FIRST = ["Anna", "Bruno", "Carla", "Dmitri", "Emma", "Farid", "Greta", "Hiroshi", "Ines", "Jonas", "Kofi", "Lena",
         "Marco", "Nadia", "Omar", "Priya", "Quentin", "Rosa", "Samuel", "Tamara", "Ulrich", "Vera", "Wei", "Yusuf"]
LAST = ["Kessler", "Volkov", "Okafor", "Lindqvist", "Moreau", "Tanaka", "Silva", "Novak", "Haddad", "Brennan",
        "Castillo", "Fischer", "Mensah", "Rossi", "Schmidt", "Yilmaz", "Kowalski", "Dubois", "Nakamura", "Ortega"]
PLACES = ["Paris", "Oslo", "Lagos", "Lima", "Nairobi", "Toronto", "Madrid", "Hanoi", "Dublin", "Santiago", "Cairo",
          "Warsaw", "New York", "San Jose", "Buenos Aires", "Cape Town", "Kuala Lumpur", "Rio de Janeiro", "Vienna",
          "Istanbul", "Lisbon", "Seoul", "Prague", "Athens"]
ORG_STEMS = ["Acme", "Globex", "Initech", "Umbrella", "Northwind", "Vandelay", "Stark", "Wayne", "Tyrell", "Cyberdyne",
             "Hooli", "Soylent", "Aperture", "Oscorp", "Wonka", "Gringotts"]
ORG_FORMS = ["{} Corp", "{} Group", "{} Bank", "{} Airlines", "{}", "{} Holdings", "University of {}"]

TEMPLATES = [
    "{PER} , the chief executive of {ORG} , said on Monday that sales in {LOC} had doubled .",
    "{ORG} will open a new office in {LOC} next year , {PER} told reporters .",
    "Police in {LOC} arrested a man on Tuesday , a spokesman for {ORG} said .",
    "{PER} won the marathon in {LOC} for the second time .",
    "Shares of {ORG} fell 4 percent after {PER} resigned .",
    "The minister met {PER} in {LOC} to discuss the deal with {ORG} .",
    "{PER} scored twice as the team from {LOC} beat the visitors 3-1 .",
    "Analysts at {ORG} expect prices in {LOC} to rise again .",
    "{PER} and {PER} will lead the talks in {LOC} .",
    "A fire closed the {ORG} factory outside {LOC} on Sunday .",
    "Flights between {LOC} and {LOC} were cancelled because of the storm .",
    "{ORG} hired {PER} as its new director .",
    "In an interview , {PER} said the project would be finished by March .",
    "Thousands gathered in {LOC} to hear {PER} speak .",
    "The court in {LOC} fined {ORG} 2 million euros .",
    "{PER} , who grew up in {LOC} , joined {ORG} in 2019 .",
]


def _pools(seed: int, held_out: bool) -> dict[str, list[list[str]]]:
    """People, places and organisations: the test split's come from the other half of each list."""
    rng = random.Random(seed)

    def half(items: list[str]) -> list[str]:
        ordered = sorted(items, key=lambda x: random.Random(x).random())
        cut = len(ordered) * 2 // 3
        return ordered[cut:] if held_out else ordered[:cut]

    firsts, lasts = half(FIRST), half(LAST)
    people = [[f] for f in firsts] + [[f, last] for f in firsts for last in lasts]
    orgs = [form.format(stem).split() for stem in half(ORG_STEMS) for form in ORG_FORMS]
    places = [p.split() for p in half(PLACES)]
    rng.shuffle(people)
    return {"PER": people, "LOC": places, "ORG": orgs}


def news_sentences(n: int, seed: int, held_out: bool = False) -> list[list[tuple[str, str]]]:
    """n sentences of (word, IOB2 tag)."""
    rng = random.Random(seed)
    pools = _pools(seed, held_out)
    out = []
    for _ in range(n):
        words: list[tuple[str, str]] = []
        for part in rng.choice(TEMPLATES).split():
            kind = part.strip("{}") if part.startswith("{") else None
            if kind is None:
                words.append((part, "O"))
                continue
            for i, word in enumerate(rng.choice(pools[kind])):
                words.append((word, f"{'B' if i == 0 else 'I'}-{kind}"))
        out.append(words)
    return out


def write_conll(path: Path, rows: list[list[tuple[str, str]]]) -> None:
    lines = ["-DOCSTART- O", ""]
    for sentence in rows:
        lines += [f"{word} {tag}" for word, tag in sentence] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")
