"""Demo data that finetune-tui writes itself: product reviews labelled positive / negative / neutral.

Deterministic (fixed seed), so the committed files in examples/ equal a fresh `finetune-tui demo`. Lengths vary
from a few words to several sentences, which is what makes dynamic padding and length grouping pay off.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from core.config import RunConfig, TrainingConfig, save_config
from core.errors import UserError

PRODUCTS = ["headphones", "coffee maker", "backpack", "desk lamp", "phone case", "running shoes", "blender",
            "keyboard", "tent", "water bottle", "novel", "vacuum cleaner", "office chair", "toaster", "jacket",
            "smart watch", "frying pan", "board game", "monitor", "suitcase"]

OPENERS = {
    "positive": ["I love this {p}.", "This {p} is excellent.", "Great {p}, highly recommended.",
                 "Best {p} I have owned.", "Really happy with this {p}.", "What a fantastic {p}!",
                 "The {p} exceeded my expectations."],
    "negative": ["I regret buying this {p}.", "This {p} is terrible.", "Awful {p}, do not buy it.",
                 "Worst {p} I have ever owned.", "Really disappointed with this {p}.", "What a useless {p}.",
                 "The {p} broke almost immediately."],
    "neutral": ["The {p} arrived on Tuesday.", "This is a {p}.", "I bought the {p} for my brother.",
                "The {p} comes in three colours.", "It is an ordinary {p}.", "The {p} is about what you would expect.",
                "I have had the {p} for a month now."],
}

DETAILS = {
    "positive": ["It works perfectly every single day.", "The quality is outstanding for the price.",
                 "Setup took two minutes and everything just worked.", "My whole family enjoys using it.",
                 "Customer service was friendly and quick.", "It feels solid and well made.",
                 "I would happily buy it again.", "Battery life is superb and charging is fast.",
                 "It looks beautiful on my desk.", "Five stars without hesitation."],
    "negative": ["It stopped working after a week.", "The quality is poor and it feels cheap.",
                 "Setup was a nightmare and the manual is useless.", "Support never answered my emails.",
                 "It makes an annoying noise all the time.", "The material started to crack quickly.",
                 "I returned it and asked for a refund.", "Battery life is awful and it overheats.",
                 "It looks nothing like the pictures.", "One star is too generous."],
    "neutral": ["It is the standard size.", "The box contained the item and a manual.",
                "Delivery took the usual number of days.", "It is available in several sizes.",
                "I use it mostly on weekends.", "The instructions are printed in four languages.",
                "It weighs about as much as similar models.", "The colour is grey.",
                "It uses a regular power plug.", "I have not decided what I think yet."],
}

# A few honest confusions so the task is not trivially separable.
TWISTS = {
    "positive": ["The packaging was a bit damaged, but that does not matter.", "It was not cheap, but worth it."],
    "negative": ["The packaging was nice, but that is the only good thing.", "It was cheap, and now I know why."],
    "neutral": ["Some people like it and some do not.", "It is neither great nor bad."],
}

LABELS = ("negative", "neutral", "positive")


def _review(rng: random.Random, label: str) -> str:
    product = rng.choice(PRODUCTS)
    parts = [rng.choice(OPENERS[label]).format(p=product)]
    # Mostly short reviews with a long tail of long ones, like real review data.
    n_details = min(len(DETAILS[label]), int(rng.expovariate(0.45)))
    parts += rng.sample(DETAILS[label], n_details)
    if rng.random() < 0.25:
        parts.insert(rng.randrange(1, len(parts) + 1), rng.choice(TWISTS[label]))
    return " ".join(parts)


def demo_rows(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = [(_review(rng, label), label) for label in (LABELS[i % len(LABELS)] for i in range(n))]
    rng.shuffle(rows)
    return rows


# Star ratings from the same phrases: an opener's tone and the details' tones, as reviewers mix them.
_STAR_TONES = {1: ("negative", "negative"), 2: ("negative", "neutral"), 3: ("neutral", "neutral"),
               4: ("positive", "neutral"), 5: ("positive", "positive")}


def demo_ratings(n: int, seed: int) -> list[tuple[str, str]]:
    """Reviews with a whole-number rating 1 to 5 (text-regression's demo): a 5 opens and goes on in praise, a 4
    opens in praise and goes on plainly, a 3 is plain throughout, and so down to 1."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        stars = 1 + i % 5
        opener, rest = _STAR_TONES[stars]
        product = rng.choice(PRODUCTS)
        parts = [rng.choice(OPENERS[opener]).format(p=product)]
        parts += rng.sample(DETAILS[rest], min(len(DETAILS[rest]), 1 + int(rng.expovariate(0.6))))
        if rng.random() < 0.2:
            parts.insert(rng.randrange(1, len(parts) + 1), rng.choice(TWISTS[opener]))
        rows.append((" ".join(parts), str(stars)))
    rng.shuffle(rows)
    return rows


# Support comments and the team tags each (multi-label-classification's demo): a comment raises one to three issues,
# each in its own words, so a tag is in the text but never alone in one word. Tags differ in how often they come, as
# they do in a real inbox: praise is rare.
TAG_SENTENCES = {
    "billing": ["I was charged twice for the {p}.", "The invoice shows the wrong amount.",
                "My refund for the {p} has not arrived.", "Why did the price change after I paid?",
                "The card payment failed but the money left my account."],
    "shipping": ["The {p} arrived a week late.", "The parcel was left at the wrong address.",
                 "Tracking has not updated in five days.", "The box was crushed when it came.",
                 "Delivery was promised for Monday and nothing came."],
    "bug": ["The app crashes when I open the {p} page.", "The website shows an error at checkout.",
            "The {p} settings screen stays blank.", "Search returns nothing even for the {p}.",
            "The page freezes after I log in."],
    "account": ["I cannot reset my password.", "My account was locked without a reason.",
                "I want to change the email on my account.", "Two-factor codes never reach my phone.",
                "Please delete my account and my data."],
    "praise": ["Your support team was wonderful.", "Thanks, the {p} is exactly what I wanted.",
               "Great service, I will order again.", "The new design is much easier to use."],
}
TAG_WEIGHTS = {"billing": 0.35, "shipping": 0.3, "bug": 0.3, "account": 0.2, "praise": 0.08}
_NEUTRAL = ["Order number 48213.", "I bought it last month.", "Hello,", "Regards, Sam.", "Sent from my phone."]


def demo_tagged(n: int, seed: int) -> list[tuple[str, str]]:
    """Support comments with their tags joined by "|" ("" for none: about one comment in five raises no issue)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        tags = [t for t, w in TAG_WEIGHTS.items() if rng.random() < w][:3]
        product = rng.choice(PRODUCTS)
        parts = [rng.choice(TAG_SENTENCES[t]).format(p=product) for t in tags]
        parts += rng.sample(_NEUTRAL, 1 + int(rng.random() < 0.3))
        rng.shuffle(parts)
        rows.append((" ".join(parts), "|".join(sorted(tags))))
    return rows


def _write_tsv(path: Path, rows: list[tuple[str, str]], header: tuple[str, str] = ("text", "label")) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def demo_config() -> RunConfig:
    return RunConfig.model_validate({
        "data": {"train_file": "demo/train.tsv", "test_file": "demo/test.tsv", "text_column": "text",
                 "label_column": "label", "validation_fraction": 0.15},
        "training": TrainingConfig(num_train_epochs=3, learning_rate=1e-4, per_device_train_batch_size=16,
                                   logging_steps=5, warmup_ratio=0.1).model_dump(),
        "metrics": ["accuracy", "f1"],
    })


def ratings_config() -> RunConfig:
    """text-regression on the ratings demo: a higher learning rate and more epochs than classification, as one
    output trained with MSE needs on this little data."""
    return RunConfig.model_validate({
        "task": "text-regression",
        "data": {"train_file": "demo/ratings_train.tsv", "test_file": "demo/ratings_test.tsv",
                 "text_column": "text", "label_column": "stars", "validation_fraction": 0.15},
        "training": TrainingConfig(num_train_epochs=4, learning_rate=1e-4, per_device_train_batch_size=16,
                                   logging_steps=5, warmup_ratio=0.1).model_dump(),
    })


def tagged_config() -> RunConfig:
    """multi-label-classification on the support comments: the task's own learning defaults, thresholds tuned per
    tag on the validation split where the task's defaults say so."""
    return RunConfig.model_validate({
        "task": "multi-label-classification",
        "data": {"train_file": "demo/comments_train.tsv", "test_file": "demo/comments_test.tsv",
                 "text_column": "text", "label_column": "tags", "validation_fraction": 0.15},
        "training": {"per_device_train_batch_size": 16, "logging_steps": 5},
    })


def entities_config() -> RunConfig:
    """token-classification on the news sentences (core.demo_entities); the test split's names are all new."""
    return RunConfig.model_validate({
        "task": "token-classification",
        "data": {"train_file": "demo/news_train.conll", "test_file": "demo/news_test.conll",
                 "validation_fraction": 0.15},
        "tokenizer": {"max_length": 64},
        "training": TrainingConfig(num_train_epochs=3, learning_rate=1e-4, per_device_train_batch_size=16,
                                   logging_steps=5).model_dump(),
    })


def write_demo(directory: Path, *, overwrite: bool = False) -> Path:
    """Write demo/train.tsv (600 rows), demo/test.tsv (150 rows) and demo.yaml under directory, the ratings demo
    for text-regression: demo/ratings_train.tsv (600), demo/ratings_test.tsv (150), demo-regression.yaml, and the
    support comments for multi-label-classification: demo/comments_{train,test}.tsv (600, 150), demo-multilabel.yaml,
    and news sentences for token-classification: demo/news_{train,test}.conll (600, 150), demo-ner.yaml."""
    from core.demo_entities import news_sentences, write_conll

    data_dir = directory / "demo"
    config_path = directory / "demo.yaml"
    ratings_path = directory / "demo-regression.yaml"
    tagged_path = directory / "demo-multilabel.yaml"
    entities_path = directory / "demo-ner.yaml"
    targets = [data_dir / "train.tsv", data_dir / "test.tsv", config_path, data_dir / "ratings_train.tsv",
               data_dir / "ratings_test.tsv", ratings_path, data_dir / "comments_train.tsv",
               data_dir / "comments_test.tsv", tagged_path, data_dir / "news_train.conll",
               data_dir / "news_test.conll", entities_path]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not overwrite:
        raise UserError(f"demo files already exist: {', '.join(existing)}", "pass --force to write them again")
    data_dir.mkdir(parents=True, exist_ok=True)
    _write_tsv(data_dir / "train.tsv", demo_rows(600, seed=1))
    _write_tsv(data_dir / "test.tsv", demo_rows(150, seed=2))
    save_config(demo_config(), config_path, overwrite=True)
    _write_tsv(data_dir / "ratings_train.tsv", demo_ratings(600, seed=3), header=("text", "stars"))
    _write_tsv(data_dir / "ratings_test.tsv", demo_ratings(150, seed=4), header=("text", "stars"))
    save_config(ratings_config(), ratings_path, overwrite=True)
    _write_tsv(data_dir / "comments_train.tsv", demo_tagged(600, seed=5), header=("text", "tags"))
    _write_tsv(data_dir / "comments_test.tsv", demo_tagged(150, seed=6), header=("text", "tags"))
    save_config(tagged_config(), tagged_path, overwrite=True)
    write_conll(data_dir / "news_train.conll", news_sentences(600, seed=7))
    write_conll(data_dir / "news_test.conll", news_sentences(150, seed=8, held_out=True))
    save_config(entities_config(), entities_path, overwrite=True)
    return config_path
