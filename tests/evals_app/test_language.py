import pytest

from evals_app.core.language import check_language, corpus_language, han_share, text_language


def test_it_calls_han_text_chinese_and_latin_text_english():
    assert text_language("我们明天去北京。") == "zh"
    assert text_language("We are going to Beijing tomorrow.") == "en"


def test_it_calls_chinese_prose_with_english_terms_chinese():
    # 7 Han characters among 27 letters (Django 6 + QuerySet 8 + filter 6 = 20 Latin): 26 %.
    text = "在 Django 中使用 QuerySet 的 filter 方法"
    assert han_share(text) == pytest.approx(7 / 27)
    assert text_language(text) == "zh"


def test_it_calls_text_without_letters_english():
    assert text_language("") == "en"
    assert text_language("3.14 + 2 = 5.14 !") == "en"


def test_it_goes_by_the_majority_of_non_blank_texts():
    assert corpus_language(["你好", "谢谢", "Thanks", ""]) == "zh"
    assert corpus_language(["你好", "Thanks", "", "   "]) == "en"  # a tie is not a majority
    assert corpus_language([]) == "en"


def test_it_refuses_a_language_it_has_no_tokenization_for():
    assert check_language("zh") == "zh"
    with pytest.raises(ValueError, match="Unsupported language 'fr'"):
        check_language("fr")
