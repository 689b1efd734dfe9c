from datasets_app.core.cleaning import clean_file
from tests.datasets_app.canonical_rows import chat, only, read_canonical, write_canonical


def _clean(tmp_path, conversations, rules):
    source = write_canonical(tmp_path / "in.jsonl", conversations)
    result = clean_file(source, rules=rules, out_path=tmp_path / "out.jsonl", examples_per_rule=10)
    return result, [row["source_line"] for row in read_canonical(tmp_path / "out.jsonl")]


def test_it_removes_garbled_rows_and_says_why(tmp_path):
    conversations = [
        chat("什么是区块链？", "区块链是一种分布式账本技术。"),
        chat("Broken \ufffd text", "ok"),
        chat("It\u2019s fine", "Itâ€™s broken"),
        chat("café au lait", "Ã© is mojibake for é"),
        chat("乱码", "锟斤拷锟斤拷"),
        chat("GBK quotes", "鈥淗ello鈥"),
        chat("bell", "ring\x07"),
        chat("Naïve résumé, São Paulo, Ærø", "Accents are fine."),
    ]

    result, kept = _clean(tmp_path, conversations, only(garbled=True))

    assert kept == [1, 8]
    outcome = result.outcome("garbled")
    assert outcome.removed == 6
    reasons = {example["source_line"]: example["reason"] for example in outcome.examples}
    assert "replacement character" in reasons[2]
    assert "“â€”" in reasons[3]
    assert "“Ã©”" in reasons[4]
    assert "锟斤拷" in reasons[5]
    assert "U+0007" in reasons[7]


def test_it_removes_chinese_and_english_ads(tmp_path):
    conversations = [
        chat("如何学习Python？", "多写代码，多读文档。想要资料请加微信 py2024 免费领取"),
        chat("推荐一本书", "扫码关注公众号获取更多"),
        chat("加V了解详情", "好的"),
        chat("Great deals", "Click here for a free gift!"),
        chat("Docs?", "See https://example.com/promo for more"),
        chat("Call", "Call 13812345678 now"),
        chat("Reach out", "For business, contact sales@example.com today"),
        chat("Explain LoRA", "LoRA trains small low-rank matrices next to frozen weights."),
        chat("如何配置git？", "运行 git config user.email alice@example.com 设置邮箱地址即可。"),
    ]

    result, kept = _clean(tmp_path, conversations, only(ads=True))

    assert kept == [8, 9]
    reasons = [example["reason"] for example in result.outcome("ads").examples]
    assert reasons[0] == "advertising phrase “加微信”"
    assert result.outcome("ads").removed == 7


def test_it_treats_a_long_run_of_one_character_as_spam_but_not_markdown_rules(tmp_path):
    conversations = [
        chat("好笑吗", "哈哈哈哈哈哈哈哈哈哈哈哈"),
        chat("Table", "| a | b |\n|----------|----------|\n| 1 | 2 |"),
        chat("Code", "def f():\n                    return 1"),
        chat("Wow", "Amazing!!!!!!!!!"),  # nine: below the default of ten
    ]

    result, kept = _clean(tmp_path, conversations, only(ads=True))

    assert kept == [2, 3, 4]
    assert result.outcome("ads").examples[0]["reason"] == "the character “哈” repeated 12 times"

    _, kept_strict = _clean(tmp_path, conversations, only(ads=True, repeated_char_run=5))
    assert kept_strict == [2, 3]


def test_it_removes_rows_outside_the_character_limits(tmp_path):
    conversations = [chat("   ", " \n "), chat("Hi", "Hello"), chat("A longer question", "x" * 200)]

    result, kept = _clean(tmp_path, conversations, only(min_chars=1))
    assert kept == [2, 3]
    assert result.outcome("char_length").examples[0]["reason"] == "only 0 characters; the minimum is 1"

    _, kept = _clean(tmp_path, conversations, only(min_chars=10, max_chars=100))
    assert kept == []

    _, kept = _clean(tmp_path, conversations, only(min_chars=5, max_chars=1000))
    assert kept == [2, 3]
