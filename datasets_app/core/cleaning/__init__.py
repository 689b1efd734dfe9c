"""Cleaning rules with preview: garbled text, ads, length, duplicates, tokens, PII.

Usage::

    result = clean_file(path, rules=CleaningRules(near_threshold=0.9), token_counter=counter)
    result.to_dict()  # JSON-safe: counts per rule, examples, diffs
"""

from datasets_app.core.cleaning.pipeline import TokenCounterRequired, build_steps, clean_file
from datasets_app.core.cleaning.result import CleaningResult, RuleOutcome
from datasets_app.core.cleaning.rules import LENGTH_MODES, RULE_LABELS, RULE_ORDER, CleaningRules

__all__ = [
    "LENGTH_MODES",
    "RULE_LABELS",
    "RULE_ORDER",
    "CleaningResult",
    "CleaningRules",
    "RuleOutcome",
    "TokenCounterRequired",
    "build_steps",
    "clean_file",
]
