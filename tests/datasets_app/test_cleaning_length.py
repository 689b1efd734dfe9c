import pytest
from transformers import AutoTokenizer

from datasets_app.core.cleaning import TokenCounterRequired, clean_file
from tests.datasets_app.canonical_rows import chat, only, read_canonical, write_canonical

SENTENCE = "Low-rank adapters keep the base weights frozen and learn a small update instead. "


@pytest.fixture(scope="module")
def chat_tokenizer(demo_model_dir):
    return AutoTokenizer.from_pretrained(demo_model_dir)


def _template_tokens(tokenizer, messages) -> int:
    """What training will see: the conversation rendered with the model's chat template."""
    return len(tokenizer.apply_chat_template(messages, tokenize=True)["input_ids"])


def _clean(tmp_path, conversations, rules, counter):
    source = write_canonical(tmp_path / "in.jsonl", conversations)
    result = clean_file(source, rules=rules, out_path=tmp_path / "out.jsonl", token_counter=counter)
    return result, read_canonical(tmp_path / "out.jsonl")


def test_it_drops_conversations_longer_than_the_limit(tmp_path, demo_token_counter):
    conversations = [chat("Short question?", "Short answer."), chat("Long question?", SENTENCE * 40)]

    result, rows = _clean(
        tmp_path, conversations, only(length_mode="drop", max_seq_len=256), demo_token_counter
    )

    assert [row["source_line"] for row in rows] == [1]
    reason = result.outcome("token_length").examples[0]["reason"]
    assert reason.endswith("tokens; the limit is 256")


def test_it_truncates_the_last_answer_so_the_conversation_fits(tmp_path, demo_token_counter, chat_tokenizer):
    long_answer = SENTENCE * 40 + "这是中文结尾。" * 30
    conversations = [chat("Tell me about LoRA.", long_answer, system="You are a helpful assistant.")]
    assert _template_tokens(chat_tokenizer, conversations[0]) > 300

    result, rows = _clean(
        tmp_path, conversations, only(length_mode="truncate", max_seq_len=300), demo_token_counter
    )

    assert len(rows) == 1
    messages = rows[0]["messages"]
    assert _template_tokens(chat_tokenizer, messages) <= 300
    assert _template_tokens(chat_tokenizer, messages) >= 290  # it used the room it had
    assert long_answer.startswith(messages[-1]["content"])
    assert messages[:2] == conversations[0][:2]
    outcome = result.outcome("token_length")
    assert (outcome.changed, outcome.removed) == (1, 0)
    assert outcome.diffs[0]["diff"].startswith("--- before\n+++ after")


def test_it_fits_without_a_system_message_too(tmp_path, demo_token_counter, chat_tokenizer):
    # SmolLM2's template adds its own system prompt when there is none; that counts as well.
    conversations = [chat("Tell me about LoRA.", SENTENCE * 40)]

    _, rows = _clean(
        tmp_path, conversations, only(length_mode="truncate", max_seq_len=128), demo_token_counter
    )

    assert 118 <= _template_tokens(chat_tokenizer, rows[0]["messages"]) <= 128


def test_it_drops_a_conversation_whose_prompt_alone_is_too_long(tmp_path, demo_token_counter):
    conversations = [chat(SENTENCE * 40, "An answer.")]

    result, rows = _clean(
        tmp_path, conversations, only(length_mode="truncate", max_seq_len=128), demo_token_counter
    )

    assert rows == []
    assert "even without its last answer" in result.outcome("token_length").examples[0]["reason"]


def test_it_splits_a_long_conversation_into_whole_exchanges_that_fit(
    tmp_path, demo_token_counter, chat_tokenizer
):
    turns = []
    for number in range(6):
        turns += [f"Question {number}: what about step {number}?", f"Answer {number}: " + SENTENCE * 3]
    conversation = chat(*turns, system="You are terse.")
    assert _template_tokens(chat_tokenizer, conversation) > 256

    result, rows = _clean(
        tmp_path, [conversation], only(length_mode="split", max_seq_len=256), demo_token_counter
    )

    assert len(rows) >= 2
    for row in rows:
        assert row["messages"][0] == {"role": "system", "content": "You are terse."}
        assert [m["role"] for m in row["messages"][1:]] == ["user", "assistant"] * (
            (len(row["messages"]) - 1) // 2
        )
        assert _template_tokens(chat_tokenizer, row["messages"]) <= 256
        assert row["source_line"] == 1
    # Every exchange is kept once, in order.
    assert [m["content"] for row in rows for m in row["messages"][1:]] == turns
    outcome = result.outcome("token_length")
    assert (outcome.changed, outcome.added, outcome.removed) == (1, len(rows) - 1, 0)
    assert result.rows_out == len(rows)


def test_it_drops_split_parts_that_cannot_fit(tmp_path, demo_token_counter):
    conversation = chat("Short?", "Short.", "Long?", SENTENCE * 40, "Short again?", "Yes.")

    result, rows = _clean(
        tmp_path, [conversation], only(length_mode="split", max_seq_len=128), demo_token_counter
    )

    # The exchanges around the dropped one are not joined: each part stays a
    # stretch of the original conversation.
    assert [[m["content"] for m in row["messages"]] for row in rows] == [
        ["Short?", "Short."],
        ["Short again?", "Yes."],
    ]
    assert result.outcome("token_length").added == 1


def test_it_needs_a_token_counter_when_the_rule_is_on(tmp_path):
    source = write_canonical(tmp_path / "in.jsonl", [chat("a", "b")])

    with pytest.raises(TokenCounterRequired, match="needs a tokenizer"):
        clean_file(source, rules=only(length_mode="drop"))

    assert clean_file(source, rules=only(length_mode="off")).rows_out == 1
