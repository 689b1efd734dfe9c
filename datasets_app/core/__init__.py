"""Dataset processing that knows nothing of Django or Celery.

Everything here takes paths and plain settings and reports progress through a
callback ``progress(done: int, total: int) -> None`` (bytes or rows), so Celery
tasks, the ``validate_dataset`` command, benchmarks and tests all call the same
code.

The canonical row (one source of truth: :mod:`datasets_app.core.canonical`) is
one JSON object per line::

    {"messages": [{"role": "user", "content": "..."},
                  {"role": "assistant", "content": "..."}],
     "source_line": 12}

Modules:
    canonical   the canonical row shape, roles, JSONL read/write helpers
    reader      physical lines of .jsonl / .json / .gz files, encodings
    formats     format detection and normalisation to canonical rows
    validate    the validation report (categories, messages, snippets)
    cleaning/   cleaning rules with preview (dedup, near-dup, quality, tokens, PII)
    stats       per-version statistics (rows, tokens, histograms)
    split       seeded train/validation split
"""
