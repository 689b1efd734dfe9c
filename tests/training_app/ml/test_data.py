"""Conversations to tokens: the loss mask covers the assistant's words and nothing else."""

from __future__ import annotations

import pytest

from tests.training_app.ml.conftest import conversation, write_jsonl
from training_app.ml.data import ConversationTokenizer, load_conversations, prepare_data
from training_app.ml.errors import TrainingDataError

MULTI_TURN = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4"},
]


@pytest.fixture(scope="module")
def demo_tokenizer(demo_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(demo_model_dir, local_files_only=True)


def masked_runs(tokenizer, input_ids, mask) -> tuple[list[str], list[str]]:
    """The decoded stretches inside the mask and outside it, in order."""
    inside, outside, current, current_bit = [], [], [], None
    for token, bit in [*zip(input_ids, mask, strict=True), (None, None)]:
        if bit != current_bit and current:
            (inside if current_bit else outside).append(tokenizer.decode(current))
            current = []
        if token is not None:
            current.append(token)
        current_bit = bit
    return inside, outside


def test_it_masks_every_assistant_turn_and_only_those(demo_tokenizer):
    encode = ConversationTokenizer(demo_tokenizer, max_seq_len=2048)
    input_ids, mask = encode(MULTI_TURN)
    # SmolLM2's template has no {% generation %} markers and trl has no marked copy of it.
    assert encode.method == "rendered_prefixes"
    assert (
        input_ids
        == demo_tokenizer.apply_chat_template(MULTI_TURN, tokenize=True, return_dict=True)["input_ids"]
    )
    inside, outside = masked_runs(demo_tokenizer, input_ids, mask)
    # The end-of-turn token is learnt too, so the model learns to stop.
    assert inside == ["Hello! How can I help?<|im_end|>", "4<|im_end|>"]
    assert "".join(outside) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"
        "\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n\n"
    )


def test_it_uses_trls_marked_template_where_trl_has_one(demo_tokenizer):
    from trl.chat_template_utils import qwen2_5_chat_template

    tokenizer = demo_tokenizer.__class__.from_pretrained(demo_tokenizer.name_or_path, local_files_only=True)
    tokenizer.chat_template = qwen2_5_chat_template  # ChatML like SmolLM2's, so the tokens exist
    encode = ConversationTokenizer(tokenizer, max_seq_len=2048)
    input_ids, mask = encode(MULTI_TURN)
    assert encode.method == "trl_training_template"
    inside, _ = masked_runs(tokenizer, input_ids, mask)
    assert [text.strip() for text in inside] == ["Hello! How can I help?<|im_end|>", "4<|im_end|>"]


def test_it_cuts_at_max_seq_len(demo_tokenizer):
    input_ids, mask = ConversationTokenizer(demo_tokenizer, max_seq_len=30)(MULTI_TURN)
    assert len(input_ids) == len(mask) == 30


def test_it_drops_rows_with_no_assistant_tokens_left_and_counts_them(demo_tokenizer, tmp_path):
    long_question = conversation(0)
    long_question["messages"][1]["content"] = "why " * 200
    long_question["source_line"] = 7
    rows = [conversation(1), long_question, conversation(2)]
    train_path = write_jsonl(tmp_path / "train.jsonl", rows)
    data = prepare_data(tokenizer=demo_tokenizer, train_path=train_path, validation_path=None, max_seq_len=64)
    assert data.train_rows == 2
    assert (data.dropped_rows, data.dropped_train_lines) == (1, [7])
    assert data.train.column_names == ["input_ids", "assistant_masks"]


def test_it_takes_the_first_rows_for_a_trial(demo_tokenizer, tmp_path):
    train_path = write_jsonl(tmp_path / "train.jsonl", [conversation(index) for index in range(10)])
    assert load_conversations(train_path, limit=3)["source_line"] == [1, 2, 3]
    data = prepare_data(
        tokenizer=demo_tokenizer, train_path=train_path, validation_path=None, max_seq_len=64, trial_rows=3
    )
    assert data.train_rows == 3


def test_it_raises_a_plain_error_when_nothing_is_left(demo_tokenizer, tmp_path):
    train_path = write_jsonl(tmp_path / "train.jsonl", [conversation(index) for index in range(3)])
    with pytest.raises(TrainingDataError) as caught:
        prepare_data(tokenizer=demo_tokenizer, train_path=train_path, validation_path=None, max_seq_len=16)
    assert caught.value.message == (
        "None of the 3 training conversations has any assistant reply left to learn from "
        "once cut to 16 tokens."
    )
    assert "maximum sequence length" in caught.value.hint


def test_it_hands_trl_labels_that_cover_only_the_assistant(demo_tokenizer, tiny_model_dir, tmp_path):
    """trl takes the pre-tokenized rows as they are and turns the mask into labels (-100 elsewhere)."""
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    train_path = write_jsonl(tmp_path / "train.jsonl", [{"messages": MULTI_TURN, "source_line": 1}])
    data = prepare_data(
        tokenizer=demo_tokenizer, train_path=train_path, validation_path=None, max_seq_len=256
    )
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True),
        args=SFTConfig(
            output_dir=str(tmp_path / "out"), use_cpu=True, bf16=False, report_to=[], max_length=256
        ),
        train_dataset=data.train,
        processing_class=demo_tokenizer,
    )
    row = trainer.train_dataset[0]
    expected = [
        token if bit else -100
        for token, bit in zip(data.train[0]["input_ids"], data.train[0]["assistant_masks"], strict=True)
    ]
    assert row["labels"] == expected
    learnt = demo_tokenizer.decode([token for token in row["labels"] if token != -100])
    assert learnt == "Hello! How can I help?<|im_end|>4<|im_end|>"
