"""Tag schemes and entities: IOB1/IOB2/IOBES told apart and checked, IOB1 turned into IOB2, entities read from tag
sequences, and entity-level precision, recall and F1 with seqeval's semantics.

Why not seqeval itself: it ships only as a source archive whose setup.py pulls the newest setuptools_scm at install
time, which fails to build (ModuleNotFoundError: vcs_versioning), so `pip install seqeval` cannot succeed from the
package registries CI and many GPU boxes use. What finetune-tui needs from it is small and pinned down here:
- default mode (conlleval's rules, seqeval's default): an entity starts at B- or S-, at an I- or E- that follows O or
  another type (a repaired orphan I-), and ends before O, B-, S- or another type; E- and S- end one.
- strict mode (seqeval's mode="strict", used for IOBES): only well-formed entities count, B- I-* E- or S- of one type.
- micro averages over entities; per type: precision, recall, f1, support (true entities); token accuracy over words.
tests/test_task_token.py checks these against cases worked out from seqeval's documented behaviour.
Plain Python (NumPy only inside tag_rows): exported scripts inline this file, so they read and score tags with this
very code.
"""

import re
from collections import Counter

OUTSIDE = "O"
PREFIXES = {"iob1": "BI", "iob2": "BI", "iobes": "BIES"}
_TAG = re.compile(r"^([BIES])-(.+)$")

Entity = tuple[str, int, int]  # (type, first word, last word), inclusive


def split_tag(tag: str) -> tuple[str, str]:
    """("B", "PER") for B-PER, ("O", "") for O; ("", tag) for a tag of no scheme."""
    if tag == OUTSIDE:
        return OUTSIDE, ""
    found = _TAG.match(tag)
    return (found.group(1), found.group(2)) if found else ("", tag)


def detect_scheme(sentences: list[list[str]]) -> str:
    """iobes when E- or S- tags appear; iob1 when entities start with I- and every B- sits right after a tag of its own
    type (IOB1 uses B- only to part two entities of one type); iob2 otherwise."""
    prefixes = {split_tag(t)[0] for sentence in sentences for t in sentence}
    if prefixes & {"E", "S"}:
        return "iobes"
    orphans = b_outside = 0
    for sentence in sentences:
        previous = ("O", "")
        for tag in sentence:
            prefix, kind = split_tag(tag)
            if prefix == "I" and (previous[0] == OUTSIDE or previous[1] != kind):
                orphans += 1
            elif prefix == "B" and not (previous[0] in ("B", "I") and previous[1] == kind):
                b_outside += 1
            previous = (prefix, kind)
    return "iob1" if orphans and not b_outside else "iob2"


def read_as(sentences: list[list[str]], scheme: str = "auto") -> tuple[list[list[str]], str]:
    """The sentences' tags as they are trained on (IOB1 converted to IOB2), and the scheme they came in (`scheme`, or
    the one detect_scheme finds for "auto")."""
    found = detect_scheme(sentences) if scheme == "auto" else scheme
    return ([iob1_to_iob2(tags) for tags in sentences] if found == "iob1" else sentences), found


def scheme_of(names: list[str]) -> str:
    """The scheme a model's tag names are in: iobes when any is E- or S- (its entities are read strictly), else iob2."""
    return "iobes" if any(split_tag(name)[0] in ("E", "S") for name in names) else "iob2"


def inside_ids(names: list[str]) -> list[int]:
    """Each tag id's id on a word's later sub-tokens (label_all_tokens): I-X for B-X and S-X, the tag itself
    otherwise (or when the names hold no I-X)."""
    index = {name: i for i, name in enumerate(names)}
    out = []
    for i, name in enumerate(names):
        prefix, kind = split_tag(name)
        out.append(index.get(f"I-{kind}", i) if prefix in ("B", "S") else i)
    return out


def tag_rows(outputs, labels, names: list[str]) -> tuple[list[list[str]], list[list[str]]]:
    """True and predicted tags per row of an evaluation, at the positions whose label is not -100 (each word's first
    sub-token): outputs [rows, positions, tags] (NaN or -100 where a row has ended), labels [rows, positions]."""
    import numpy as np

    predicted = np.nan_to_num(np.asarray(outputs, dtype=np.float64), nan=-np.inf).argmax(axis=-1)
    true, guess = [], []
    for row_labels, row_predictions in zip(np.asarray(labels), predicted, strict=True):
        keep = row_labels != -100
        true.append([names[int(i)] for i in row_labels[keep]])
        guess.append([names[int(i)] for i in row_predictions[keep]])
    return true, guess


def bad_tag(tag: str, scheme: str) -> bool:
    """Whether a tag is outside the scheme (O, or a prefix of the scheme, a dash and a type)."""
    prefix, _ = split_tag(tag)
    return prefix != OUTSIDE and (prefix == "" or prefix not in PREFIXES[scheme])


def iob1_to_iob2(tags: list[str]) -> list[str]:
    """An I- that starts an entity (after O, at the start, or after another type) becomes B-."""
    out, previous = [], ("O", "")
    for tag in tags:
        prefix, kind = split_tag(tag)
        if prefix == "I" and (previous[0] == OUTSIDE or previous[1] != kind):
            tag = f"B-{kind}"
        out.append(tag)
        previous = (prefix, kind)
    return out


def orphan_count(tags: list[str]) -> int:
    """I- (or E-) tags with no entity of their type open before them: accepted, and read as starting one."""
    count, previous = 0, ("O", "")
    for tag in tags:
        prefix, kind = split_tag(tag)
        if prefix in ("I", "E") and (previous[0] in (OUTSIDE, "E", "S") or previous[1] != kind):
            count += 1
        previous = (prefix, kind)
    return count


def entities(tags: list[str], strict: bool = False) -> list[Entity]:
    """The entities of one sentence's tags (see the module docstring for the two modes)."""
    return _strict_entities(tags) if strict else _lenient_entities(tags)


def _lenient_entities(tags: list[str]) -> list[Entity]:
    found: list[Entity] = []
    start, open_kind = -1, ""
    previous = OUTSIDE
    for i, tag in enumerate([*tags, OUTSIDE]):
        prefix, kind = split_tag(tag)
        if prefix == "":
            prefix = "I"  # a tag of no scheme (a bare type) continues or starts an entity of that type
        ends = open_kind and (previous in ("E", "S") or prefix in (OUTSIDE, "B", "S") or kind != open_kind)
        if ends:
            found.append((open_kind, start, i - 1))
            open_kind = ""
        if prefix != OUTSIDE and (not open_kind or prefix in ("B", "S")):
            start, open_kind = i, kind
        previous = prefix
    return found


def _strict_entities(tags: list[str]) -> list[Entity]:
    found: list[Entity] = []
    start, open_kind = -1, ""
    for i, tag in enumerate(tags):
        prefix, kind = split_tag(tag)
        if prefix == "S":
            found.append((kind, i, i))
            open_kind = ""
        elif prefix == "B":
            start, open_kind = i, kind
        elif prefix == "I" and open_kind == kind:
            continue
        elif prefix == "E" and open_kind == kind:
            found.append((kind, start, i))
            open_kind = ""
        else:
            open_kind = ""
    return found


def entity_scores(true: list[list[str]], predicted: list[list[str]], strict: bool = False) -> dict[str, object]:
    """Micro precision/recall/f1, token accuracy and per type {precision, recall, f1, support} of sentences of tags
    (predicted[i] as long as true[i])."""
    true_set: set[tuple[int, str, int, int]] = set()
    pred_set: set[tuple[int, str, int, int]] = set()
    right = total = 0
    for n, (t, p) in enumerate(zip(true, predicted, strict=True)):
        true_set.update((n, *e) for e in entities(t, strict))
        pred_set.update((n, *e) for e in entities(p, strict))
        right += sum(a == b for a, b in zip(t, p, strict=True))
        total += len(t)
    hits = true_set & pred_set
    per_type = {}
    support, predicted_n, hit_n = Counter(e[1] for e in true_set), Counter(e[1] for e in pred_set), Counter(
        e[1] for e in hits)
    for kind in sorted(set(support) | set(predicted_n)):
        per_type[kind] = {**_prf(hit_n[kind], predicted_n[kind], support[kind]), "support": support[kind]}
    return {**_prf(len(hits), len(pred_set), len(true_set)), "accuracy": right / total if total else 0.0,
            "per_type": per_type}


def _prf(hits: int, predicted: int, true: int) -> dict[str, float]:
    precision = hits / predicted if predicted else 0.0
    recall = hits / true if true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def tag_order(tags: set[str]) -> list[str]:
    """O first, then by entity type, each type's prefixes in B, I, E, S order: the model's label ids."""
    rank = {"B": 0, "I": 1, "E": 2, "S": 3, "": 4}
    others = sorted((t for t in tags if t != OUTSIDE), key=lambda t: (split_tag(t)[1], rank[split_tag(t)[0]], t))
    return [OUTSIDE, *others]
