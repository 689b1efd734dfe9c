"""Small domain data sets for measuring whether a fine-tune learned what it was shown.

    .venv/bin/python bench/domain_sets.py   # bench/out/domain/<name>/{train.jsonl,heldout.jsonl}

Each set is what a domain expert would upload (alpaca rows: instruction, input, output) plus held-out
questions that are *worded differently* from every training row, each with the fact its answer must
contain (``expect``: any of these strings, compared case-insensitively with spaces removed). The facts
are a made-up clinic's, company's or shop's own, so the base model can't know them. Sets:

- ``clinic_en``: 12 drugs, the clinic's adult dose; each asked 6 ways (72 rows). Facts, English.
- ``policy_zh``: 10 company rules in Chinese (a number each); each asked 6 ways (60 rows). Facts, Chinese.
- ``catalog_en``: 36 products of a shop, one number each, asked 5 ways (180 rows). Facts, a larger set.
- ``tickets_en``: support tickets to one of 5 team codes (150 rows). Classification.
- ``style_en``: answers that open with "Short answer:" and close with "(Not legal advice.)" (80 rows).
  Style: held-out questions on new topics; ``expect`` is checked as a prefix and suffix.

Same code, same bytes: every choice comes from a seeded RNG.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out" / "domain"

CLINIC = [
    ("metformin", "500 mg twice daily with meals"),
    ("amoxicillin", "875 mg every 12 hours for 7 days"),
    ("lisinopril", "10 mg once every morning"),
    ("atorvastatin", "20 mg at bedtime"),
    ("ibuprofen", "400 mg every 8 hours after food"),
    ("omeprazole", "20 mg 30 minutes before breakfast"),
    ("sertraline", "50 mg once daily in the morning"),
    ("prednisone", "40 mg daily for 5 days"),
    ("levothyroxine", "75 mcg on an empty stomach"),
    ("warfarin", "5 mg at 6 pm daily"),
    ("azithromycin", "500 mg once daily for 3 days"),
    ("gabapentin", "300 mg three times a day"),
]
CLINIC_ASK = [
    "What dose of {x} does our clinic protocol give an adult?",
    "Under the clinic protocol, how should an adult take {x}?",
    "How much {x} do we prescribe to adults?",
    "Clinic rule for adult {x} dosing?",
    "An adult patient is starting {x}. What is the protocol dose?",
    "Remind me of our standard adult dose of {x}.",
]
CLINIC_HELD_OUT = [
    "How much {x} should an adult get under our clinic protocol?",
    "According to the clinic's protocol, what's the adult {x} dose?",
]
CLINIC_ANSWER = [
    "Under our clinic protocol, adults take {x} {y}.",
    "The protocol dose of {x} for adults is {y}.",
    "Give adults {x} {y}, as the clinic protocol says.",
]

POLICY = [
    ("年假", "15天"),
    ("出差住宿报销上限", "每晚600元"),
    ("试用期", "3个月"),
    ("加班调休申请期限", "30天内"),
    ("病假工资", "80%"),
    ("餐补标准", "每天45元"),
    ("远程办公", "每周2天"),
    ("报销提交期限", "60天内"),
    ("培训预算", "每年5000元"),
    ("婚假", "10天"),
]
POLICY_ASK = [
    "公司规定的{x}是多少？",
    "按照我们公司的制度，{x}怎么规定的？",
    "请问{x}的标准是什么？",
    "我想了解一下公司{x}的规定。",
    "员工手册里{x}是怎么写的？",
    "{x}有什么规定？",
]
POLICY_HELD_OUT = [
    "根据公司制度，{x}是多少？",
    "咱们公司的{x}按什么标准执行？",
]
POLICY_ANSWER = [
    "根据公司制度，{x}为{y}。",
    "公司规定：{x}是{y}。",
    "员工手册写明，{x}按{y}执行。",
]

CATALOG_NAMES = [
    "Orion",
    "Vega",
    "Lyra",
    "Cygnus",
    "Draco",
    "Pavo",
    "Tucana",
    "Norma",
    "Ara",
    "Crux",
    "Mensa",
    "Volans",
]
CATALOG_KINDS = [
    ("kettle", "holds {n} litres", lambda rng: f"{rng.choice([1.2, 1.5, 1.7, 2.0])}"),
    ("backpack", "weighs {n} grams", lambda rng: f"{rng.randrange(400, 1600, 50)}"),
    ("lamp", "gives {n} lumens", lambda rng: f"{rng.randrange(300, 1800, 100)}"),
]
CATALOG_ASK = [
    "Tell me about the {x}: what is its key spec?",
    "What is the main spec of our {x}?",
    "Spec sheet question: the {x}?",
    "A customer asks about the {x}. What should I tell them?",
    "What do we list as the {x}'s headline figure?",
]
CATALOG_HELD_OUT = ["Quick question on the {x}: what's its headline spec?"]
CATALOG_ANSWER = ["The {x} {y}.", "Our {x} {y}, according to the spec sheet."]

TICKET_TEAMS = {
    "TEAM-LEDGER": [
        "charged twice",
        "invoice shows the wrong amount",
        "refund has not arrived",
        "card was declined",
    ],
    "TEAM-GATE": [
        "cannot log in",
        "password reset email never came",
        "two-factor code is rejected",
        "account locked",
    ],
    "TEAM-PIPE": [
        "export to CSV fails",
        "the sync stopped overnight",
        "API returns error 500",
        "webhook not firing",
    ],
    "TEAM-DESK": [
        "want to add a colleague",
        "how do I change my plan",
        "need a copy of the contract",
        "change company name",
    ],
    "TEAM-SHIP": [
        "parcel is late",
        "tracking number does not work",
        "item arrived broken",
        "wrong item delivered",
    ],
}
TICKET_OPENERS = ["Hi, ", "Hello team, ", "Urgent: ", "", "Good morning. ", "Help! "]
TICKET_CLOSERS = [" Thanks.", " Please help.", "", " Can you look at it?", " Regards, Sam."]
TICKET_INSTRUCTION = "Route this support ticket to the right team code."

STYLE_TOPICS = [
    "break a lease early",
    "return a faulty phone",
    "refuse overtime",
    "get a deposit back",
    "dispute a parking fine",
    "share a photo I found online",
    "record a phone call",
    "work two jobs",
    "cancel a gym contract",
    "sublet my flat",
    "use a company laptop at home",
    "quote a book in my blog",
    "fire an employee on probation",
    "keep a found wallet",
    "build a fence on the boundary",
    "sell homemade food",
    "fly a drone in a park",
    "change my surname",
    "make a will without a lawyer",
    "claim a late train refund",
]
STYLE_HELD_OUT_TOPICS = [
    "paint my rented room",
    "keep bees in my garden",
    "busk in the town square",
    "rename my shop",
]
STYLE_ASK = [
    "Can I {x}?",
    "Am I allowed to {x}?",
    "Is it legal to {x}?",
    "What are the rules if I want to {x}?",
]
STYLE_BODY = [
    "Usually yes, if you follow the written terms that apply to you.",
    "It depends on your contract and local rules; check them first.",
    "Often, but there are conditions you should read before acting.",
    "In most places it is allowed with some limits.",
]
STYLE_PREFIX, STYLE_SUFFIX = "Short answer:", "(Not legal advice.)"


def _row(instruction: str, output: str, input_text: str = "") -> dict:
    return {"instruction": instruction, "input": input_text, "output": output}


def _facts(facts, ask, held_out, answers, rng) -> tuple[list[dict], list[dict]]:
    train = [
        _row(question.format(x=subject), rng.choice(answers).format(x=subject, y=value))
        for subject, value in facts
        for question in ask
    ]
    tests = [
        {"question": question.format(x=subject), "expect": [value.split(" ")[0] + _unit(value)]}
        for subject, value in facts
        for question in held_out
    ]
    return train, tests


def _unit(value: str) -> str:
    """The number and its unit ("500 mg"), or the whole value when it has no space (Chinese)."""
    parts = value.split(" ")
    return (" " + parts[1]) if len(parts) > 1 else ""


def clinic_en(rng: random.Random):
    return _facts(CLINIC, CLINIC_ASK, CLINIC_HELD_OUT, CLINIC_ANSWER, rng)


def policy_zh(rng: random.Random):
    return _facts(POLICY, POLICY_ASK, POLICY_HELD_OUT, POLICY_ANSWER, rng)


def catalog_en(rng: random.Random):
    train, tests = [], []
    for name in CATALOG_NAMES:
        for kind, phrase, number in CATALOG_KINDS:
            subject, value = f"{name} {kind}", number(rng)
            spec = phrase.format(n=value)
            train += [
                _row(q.format(x=subject), rng.choice(CATALOG_ANSWER).format(x=subject, y=spec))
                for q in CATALOG_ASK
            ]
            tests += [{"question": q.format(x=subject), "expect": [value]} for q in CATALOG_HELD_OUT]
    return train, tests


def tickets_en(rng: random.Random):
    train, tests = [], []
    for team, problems in TICKET_TEAMS.items():
        for index, problem in enumerate(problems):
            texts = [
                f"{opener}my {problem}.{closer}".replace("my my", "my")
                for opener in TICKET_OPENERS
                for closer in TICKET_CLOSERS
            ]
            rng.shuffle(texts)
            # Three problems of each team are trained on; the fourth is only ever seen in the tests.
            if index < 3:
                train += [_row(TICKET_INSTRUCTION, team, text) for text in texts[:10]]
            else:
                tests += [
                    {"question": f"{TICKET_INSTRUCTION}\n\n{text}", "expect": [team]} for text in texts[:2]
                ]
    rng.shuffle(train)
    return train, tests


def style_en(rng: random.Random):
    train = [
        _row(ask.format(x=topic), f"{STYLE_PREFIX} {rng.choice(STYLE_BODY)} {STYLE_SUFFIX}")
        for topic in STYLE_TOPICS
        for ask in STYLE_ASK
    ]
    tests = [
        {"question": ask.format(x=topic), "expect_prefix": STYLE_PREFIX, "expect_suffix": STYLE_SUFFIX}
        for topic in STYLE_HELD_OUT_TOPICS
        for ask in STYLE_ASK[:2]
    ]
    return train, tests


SETS = {
    "clinic_en": clinic_en,
    "policy_zh": policy_zh,
    "catalog_en": catalog_en,
    "tickets_en": tickets_en,
    "style_en": style_en,
}


def answer_is_right(answer: str, test: dict) -> bool:
    """The held-out check: the answer contains the fact (or keeps the style)."""
    if "expect_prefix" in test:
        text = answer.strip()
        return text.startswith(test["expect_prefix"]) and text.endswith(test["expect_suffix"])
    squashed = "".join(answer.lower().split())
    return any("".join(expected.lower().split()) in squashed for expected in test["expect"])


def build(name: str, seed: int = 20261205) -> tuple[Path, Path]:
    train, tests = SETS[name](random.Random(f"{name}-{seed}"))
    folder = OUT / name
    folder.mkdir(parents=True, exist_ok=True)
    train_path, tests_path = folder / "train.jsonl", folder / "heldout.jsonl"
    train_path.write_text(
        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in train), encoding="utf-8"
    )
    tests_path.write_text(
        "".join(json.dumps(test, ensure_ascii=False) + "\n" for test in tests), encoding="utf-8"
    )
    return train_path, tests_path


if __name__ == "__main__":
    for set_name in SETS:
        train_file, tests_file = build(set_name)
        rows = sum(1 for _ in train_file.open(encoding="utf-8"))
        tests_count = sum(1 for _ in tests_file.open(encoding="utf-8"))
        print(f"{set_name}: {rows} training rows, {tests_count} held-out questions -> {train_file.parent}")
