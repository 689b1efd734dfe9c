"""Cleaning rules with preview: garbled text, ads, length, duplicates, tokens, PII.

Usage::

    result = clean_file(path, rules=CleaningRules(near_threshold=0.9), token_counter=counter)
    result.to_dict()  # JSON-safe: counts per rule, examples, diffs

The rules (settings) import without numpy or datasketch, so the web process can
build forms from them; the pipeline loads on first use, in workers.
"""

from importlib import import_module

from datasets_app.core.cleaning.rules import LENGTH_MODES, RULE_LABELS, RULE_ORDER, CleaningRules

_LAZY = {
    "TokenCounterRequired": "datasets_app.core.cleaning.pipeline",
    "build_steps": "datasets_app.core.cleaning.pipeline",
    "clean_file": "datasets_app.core.cleaning.pipeline",
    "CleaningResult": "datasets_app.core.cleaning.result",
    "RuleOutcome": "datasets_app.core.cleaning.result",
}

__all__ = ["LENGTH_MODES", "RULE_LABELS", "RULE_ORDER", "CleaningRules", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
