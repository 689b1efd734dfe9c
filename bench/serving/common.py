"""What every part of the serving benchmarks shares: where things are, the prompts."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
OUT = REPO / "bench" / "out" / "serve"
RESULTS = REPO / "bench" / "results" / "serve_cpu.jsonl"
DEMO_DIR = REPO / ".data" / "test-cache" / "demo-model"
REDIS_URL = "redis://127.0.0.1:6379/12"
PASSWORD = "bench-password-1"  # noqa: S105 - a throwaway user of a throwaway site
sys.path.insert(0, str(REPO))

TOPICS = [
    "a lathe",
    "a lighthouse keeper",
    "a lost umbrella",
    "the first snow",
    "a robot gardener",
    "a night train",
    "a chess club",
    "an old map",
    "a quiet library",
    "a river crossing",
    "a bakery at dawn",
    "a broken clock",
    "a mountain village",
    "a kite festival",
    "a paper boat",
    "a stray cat",
    "a violin maker",
    "a desert well",
    "a city at night",
    "a beekeeper",
    "a forgotten letter",
    "a storm at sea",
    "a market day",
    "a glass blower",
    "a long winter",
    "a carpenter's apprentice",
    "a bridge builder",
    "a small island",
    "a school play",
    "a lost key",
    "a harvest moon",
    "a potter's wheel",
    "a bicycle repair shop",
    "a spring flood",
    "a ferry captain",
    "a map maker",
    "a wind farm",
    "a night market",
    "a mountain rescue",
    "a clock tower",
    "a fishing village",
    "a radio operator",
    "a tea plantation",
    "an old piano",
    "a railway station",
    "a treehouse",
    "a postman",
    "a space station",
    "a salt mine",
    "a blacksmith",
    "a weather balloon",
    "a silk road caravan",
    "a coral reef",
    "a lantern festival",
    "a printing press",
    "a sheep farm",
    "a lighthouse storm",
    "a ship in a bottle",
    "a museum guard",
    "a glacier",
    "a food truck",
    "a beehive",
    "a sailing race",
    "a shoemaker",
]


def prompt_text(index: int) -> str:
    return f"Write a short story about {TOPICS[index % len(TOPICS)]}."
