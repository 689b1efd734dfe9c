import json

import pytest

from datasets_app.core.cleaning import RULE_ORDER, CleaningRules


def test_it_defaults_to_the_guides_settings():
    rules = CleaningRules()

    assert rules.max_seq_len == 2048
    assert rules.length_mode == "drop"
    assert rules.near_threshold == 0.85
    assert rules.num_perm == 64
    assert rules.exact_dedup and rules.exact_normalize and rules.near_dedup
    assert rules.garbled and rules.ads
    assert rules.repeated_char_run == 10
    assert rules.min_chars == 1 and rules.max_chars is None
    assert rules.pii_mask is False


def test_it_round_trips_through_json():
    rules = CleaningRules(
        near_threshold=0.9, length_mode="split", max_seq_len=1024, pii_mask=True, max_chars=500
    )

    restored = CleaningRules.from_dict(json.loads(json.dumps(rules.to_dict())))

    assert restored == rules


def test_it_fills_missing_settings_with_defaults():
    assert CleaningRules.from_dict({"pii_mask": True}) == CleaningRules(pii_mask=True)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"near_threshold": 0.4}, "near_threshold must be a number between 0.5 and 0.99"),
        ({"near_threshold": 1.0}, "near_threshold must be a number between 0.5 and 0.99"),
        ({"near_threshold": "0.8"}, "near_threshold"),
        ({"length_mode": "cut"}, "length_mode must be one of off, drop, truncate, split"),
        ({"max_seq_len": 8}, "max_seq_len must be a whole number between 16"),
        ({"max_seq_len": True}, "max_seq_len"),
        ({"num_perm": 4}, "num_perm"),
        ({"min_chars": -1}, "min_chars"),
        ({"min_chars": 50, "max_chars": 10}, "max_chars (10) must not be smaller than min_chars (50)"),
        ({"garbled": "yes"}, "garbled must be true or false"),
        ({"repeated_char_run": 2}, "repeated_char_run"),
    ],
)
def test_it_rejects_settings_out_of_range_with_a_clear_message(settings, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CleaningRules.from_dict(settings)


def test_it_rejects_unknown_settings():
    with pytest.raises(ValueError, match="Unknown cleaning setting.*near_treshold"):
        CleaningRules.from_dict({"near_treshold": 0.9})


def test_it_reports_which_rules_are_enabled_in_pipeline_order():
    rules = CleaningRules(length_mode="off", min_chars=0, pii_mask=True)

    enabled = [rule for rule in RULE_ORDER if rules.enabled(rule)]

    assert enabled == ["garbled", "ads", "exact_dedup", "near_dedup", "pii_mask"]
