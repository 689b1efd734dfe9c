import pytest

from datasets_app.core.cleaning import clean_file
from datasets_app.core.cleaning.pii import mask_pii
from tests.datasets_app.canonical_rows import chat, only, read_canonical, write_canonical


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("Write to alice.smith+work@example.co.uk.", "Write to [EMAIL]."),
        ("我的手机是13812345678。", "我的手机是[PHONE]。"),
        ("Call +86 138 1234 5678 or +44 20 7946 0958", "Call [PHONE] or [PHONE]"),
        ("Office: (555) 123-4567, fax 555.987.6543", "Office: [PHONE], fax [PHONE]"),
        ("身份证号 11010519491231002X 请保密", "身份证号 [ID_NUMBER] 请保密"),
        ("SSN 123-45-6789", "SSN [ID_NUMBER]"),
        (
            "In 2024 we sold 12345 units of v1.2.3 at 3.14159 each",
            "In 2024 we sold 12345 units of v1.2.3 at 3.14159 each",
        ),
    ],
)
def test_it_masks_personal_data_and_leaves_other_numbers(text, masked):
    assert mask_pii(text) == masked


def test_it_masks_rows_and_shows_the_change_as_a_diff(tmp_path):
    conversations = [
        chat("Who do I ask?", "Ask bob@example.com or call 13912345678."),
        chat("What is 2+2?", "4"),
    ]
    source = write_canonical(tmp_path / "in.jsonl", conversations)

    result = clean_file(source, rules=only(pii_mask=True), out_path=tmp_path / "out.jsonl")

    rows = read_canonical(tmp_path / "out.jsonl")
    assert rows[0]["messages"][1]["content"] == "Ask [EMAIL] or call [PHONE]."
    assert rows[1]["messages"] == conversations[1]
    outcome = result.outcome("pii_mask")
    assert (outcome.changed, outcome.removed) == (1, 0)
    diff = outcome.diffs[0]
    assert diff["source_line"] == 1
    assert "-assistant: Ask bob@example.com or call 13912345678." in diff["diff"]
    assert "+assistant: Ask [EMAIL] or call [PHONE]." in diff["diff"]
    assert "bob@example.com" in diff["before"] and "[EMAIL]" in diff["after"]
