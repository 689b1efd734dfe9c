"""The cleaning settings a user picks, validated in one place."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

# Pipeline order, and the names used in results and forms (one source of truth).
RULE_ORDER: tuple[str, ...] = (
    "garbled",
    "ads",
    "char_length",
    "exact_dedup",
    "near_dedup",
    "token_length",
    "pii_mask",
)
RULE_LABELS: dict[str, str] = {
    "garbled": "Garbled text",
    "ads": "Advertising and spam",
    "char_length": "Too short or too long (characters)",
    "exact_dedup": "Exact duplicates",
    "near_dedup": "Near duplicates",
    "token_length": "Too long for the model (tokens)",
    "pii_mask": "Personal data masked",
}
LENGTH_MODES: tuple[str, ...] = ("off", "drop", "truncate", "split")


@dataclass(frozen=True)
class CleaningRules:
    garbled: bool = True
    ads: bool = True
    # Ads/spam: a character repeated this many times in a row ("哈哈哈哈…", "!!!!…").
    repeated_char_run: int = 10
    min_chars: int = 1
    max_chars: int | None = None
    exact_dedup: bool = True
    # Compare case-folded text with runs of whitespace collapsed.
    exact_normalize: bool = True
    near_dedup: bool = True
    near_threshold: float = 0.85
    num_perm: int = 64
    length_mode: str = "drop"
    # The guide trains with max_seq_length=2048.
    max_seq_len: int = 2048
    pii_mask: bool = False

    def __post_init__(self) -> None:
        for name in ("garbled", "ads", "exact_dedup", "exact_normalize", "near_dedup", "pii_mask"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false (got {getattr(self, name)!r}).")
        _check_int("repeated_char_run", self.repeated_char_run, 3, 10_000)
        _check_int("min_chars", self.min_chars, 0, 10_000_000)
        if self.max_chars is not None:
            _check_int("max_chars", self.max_chars, 1, 100_000_000)
            if self.max_chars < self.min_chars:
                raise ValueError(
                    f"max_chars ({self.max_chars}) must not be smaller than min_chars ({self.min_chars})."
                )
        threshold = self.near_threshold
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float)
            or not 0.5 <= threshold <= 0.99
        ):
            raise ValueError(f"near_threshold must be a number between 0.5 and 0.99 (got {threshold!r}).")
        _check_int("num_perm", self.num_perm, 16, 1024)
        if self.length_mode not in LENGTH_MODES:
            raise ValueError(
                f"length_mode must be one of {', '.join(LENGTH_MODES)} (got {self.length_mode!r})."
            )
        _check_int("max_seq_len", self.max_seq_len, 16, 1_048_576)

    @property
    def char_length_enabled(self) -> bool:
        return self.min_chars > 0 or self.max_chars is not None

    def enabled(self, rule: str) -> bool:
        return {
            "garbled": self.garbled,
            "ads": self.ads,
            "char_length": self.char_length_enabled,
            "exact_dedup": self.exact_dedup,
            "near_dedup": self.near_dedup,
            "token_length": self.length_mode != "off",
            "pii_mask": self.pii_mask,
        }[rule]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CleaningRules:
        """Build from stored or submitted settings; missing keys take the defaults."""
        if not isinstance(data, dict):
            raise ValueError("Cleaning settings must be a JSON object.")
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown cleaning setting(s): {', '.join(unknown)}.")
        return cls(**data)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    # bool is an int subclass; "true" for a count is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number between {low:,} and {high:,} (got {value!r}).")
