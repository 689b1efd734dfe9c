import pytest
from transformers import AutoTokenizer

from datasets_app.core.tokens import (
    HfTokenCounter,
    TokenCounter,
    WhitespaceTokenCounter,
    conversation_tokens_many,
)

MIXED = "你好世界，这是一个测试。Hello world 😀 emoji, naïve café"
CONVERSATIONS = [
    [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "Paris."},
    ],
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Explain LoRA in one line."},
        {"role": "assistant", "content": "Low-rank adapters on frozen weights."},
        {"role": "user", "content": "用中文再说一遍"},
        {"role": "assistant", "content": "在冻结的权重旁训练低秩适配器。"},
    ],
]


@pytest.fixture(scope="module")
def chat_tokenizer(demo_model_dir):
    return AutoTokenizer.from_pretrained(demo_model_dir)


def test_it_counts_like_the_models_tokenizer(demo_token_counter, chat_tokenizer):
    texts = ["Hello world", MIXED, "", "def f(x):\n    return x * 2\n"]

    expected = [len(chat_tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts]

    assert [demo_token_counter.count(text) for text in texts] == expected
    assert demo_token_counter.count_many(texts) == expected
    assert demo_token_counter.count_many([]) == []


def test_it_counts_a_conversation_as_the_chat_template_renders_it(demo_token_counter, chat_tokenizer):
    for messages in CONVERSATIONS:
        rendered = len(chat_tokenizer.apply_chat_template(messages, tokenize=True)["input_ids"])
        assert demo_token_counter.conversation_tokens(messages) == rendered

    assert conversation_tokens_many(demo_token_counter, CONVERSATIONS) == [
        demo_token_counter.conversation_tokens(messages) for messages in CONVERSATIONS
    ]


def test_it_measures_the_templates_framing(demo_token_counter):
    # ChatML: <|im_start|>role\n ... <|im_end|>\n, "assistant" being two tokens in SmolLM2.
    assert demo_token_counter.role_overhead["user"] == 5
    assert demo_token_counter.role_overhead["assistant"] == 6
    assert demo_token_counter.per_message_overhead == 6
    # SmolLM2 adds its own system prompt when a conversation has none.
    assert demo_token_counter.implicit_system_tokens > 10


@pytest.mark.parametrize("limit", [0, 1, 2, 3, 5, 8, 13, 21])
def test_it_truncates_to_a_prefix_that_fits_without_splitting_characters(demo_token_counter, limit):
    truncated = demo_token_counter.truncate(MIXED, limit)

    assert MIXED.startswith(truncated)
    assert demo_token_counter.count(truncated) <= limit
    assert "\ufffd" not in truncated
    assert demo_token_counter.count(truncated) >= limit - 2  # it does not give away more than a character


def test_it_leaves_text_that_fits_alone(demo_token_counter):
    assert demo_token_counter.truncate(MIXED, 1000) == MIXED


def test_the_whitespace_counter_counts_words():
    counter = WhitespaceTokenCounter(per_message_overhead=3)

    assert counter.count("one  two\nthree") == 3
    assert counter.truncate("one  two\nthree", 2) == "one  two"
    assert counter.conversation_tokens(CONVERSATIONS[0]) == 6 + 1 + 2 * 3
    assert conversation_tokens_many(counter, CONVERSATIONS[:1]) == [13]


def test_both_counters_satisfy_the_protocol(demo_token_counter):
    assert isinstance(WhitespaceTokenCounter(), TokenCounter)
    assert isinstance(demo_token_counter, TokenCounter)
    assert isinstance(demo_token_counter, HfTokenCounter)
