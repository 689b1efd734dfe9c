"""Base models Lathe knows by name, as data: shapes for the memory estimate, counts, templates.

Plain Python, no Django: the registry's database rows are seeded from :data:`PRESETS`, and the
training core reads the same numbers. A model that is not here (a custom upload) gets its
:class:`ArchShape` from its own ``config.json`` through :meth:`ArchShape.from_config_dict`.

The Qwen2.5 numbers are those of the published ``config.json`` files on the Hugging Face Hub.
Base and -Instruct share everything but ``max_position_embeddings``: the 1.5B, 7B, 14B, 32B and
72B base configs say 131,072 and their -Instruct configs 32,768 (reached further with YaRN).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from models_app.ml.demo_model import DEMO_MODEL_ID

ATTENTION_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_MODULES = ("gate_proj", "up_proj", "down_proj")
# How an adapter is trained (the recipe's `method`, stored on the adapter), and which of them vLLM serves:
# a QLoRA adapter is a LoRA adapter trained against a 4-bit base, and loads as one; IA3 has no vLLM form.
ADAPTER_METHODS = ("lora", "qlora", "ia3")
# How each is written in words (logs, forms).
ADAPTER_METHOD_NAMES = {"lora": "LoRA", "qlora": "QLoRA", "ia3": "IA³"}
SERVABLE_ADAPTER_METHODS = ("lora", "qlora")
LORA_TARGET_PRESETS: dict[str, tuple[str, ...]] = {
    "attention": ATTENTION_MODULES,
    "all_linear": ATTENTION_MODULES + MLP_MODULES,
}

# Keys a config.json must have for an estimate; the rest have defaults.
_REQUIRED_KEYS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "vocab_size",
)


class UnsupportedConfig(ValueError):
    """A config.json lacks what the estimates need (not a llama-style decoder)."""


@dataclass(frozen=True)
class ArchShape:
    """The numbers of a llama-style decoder (Llama, Qwen2, Mistral...) that size and cost depend on."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    tie_word_embeddings: bool
    max_position_embeddings: int
    # None: hidden_size / num_attention_heads, as in Llama and Qwen2 (Qwen3 and Gemma set it apart).
    head_dim: int | None = None
    # Qwen2 has biases on q/k/v; Llama does not.
    attention_bias: bool = False

    def __post_init__(self) -> None:
        if self.head_dim is None:
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_attention_heads)

    @property
    def q_size(self) -> int:
        return self.num_attention_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        return self.num_key_value_heads * self.head_dim

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in_features, out_features) of each projection in one decoder layer, by module name."""
        h, i = self.hidden_size, self.intermediate_size
        return {
            "q_proj": (h, self.q_size),
            "k_proj": (h, self.kv_size),
            "v_proj": (h, self.kv_size),
            "o_proj": (self.q_size, h),
            "gate_proj": (h, i),
            "up_proj": (h, i),
            "down_proj": (i, h),
        }

    def layer_linear_params(self) -> int:
        """Weights of one layer's projections (what QLoRA stores in 4 bits), biases excluded."""
        return sum(fan_in * fan_out for fan_in, fan_out in self.linear_shapes().values())

    def embedding_params(self) -> int:
        """Input embeddings plus, unless tied to them, the output head."""
        table = self.vocab_size * self.hidden_size
        return table if self.tie_word_embeddings else 2 * table

    def parameter_count(self) -> int:
        """Every parameter, as the Hub's model pages count them (a tied head counted once)."""
        bias = (self.q_size + 2 * self.kv_size) if self.attention_bias else 0
        norms = 2 * self.hidden_size
        per_layer = self.layer_linear_params() + bias + norms
        return self.num_hidden_layers * per_layer + self.embedding_params() + self.hidden_size

    def matmul_params(self) -> int:
        """Weights that each token is multiplied through (the output head, not the lookup table)."""
        return self.num_hidden_layers * self.layer_linear_params() + self.vocab_size * self.hidden_size

    @classmethod
    def from_config_dict(cls, config_json: Mapping[str, Any]) -> ArchShape:
        """Read a model's config.json (as a dict); multimodal configs are read from ``text_config``."""
        config = config_json.get("text_config") or config_json
        missing = [key for key in _REQUIRED_KEYS if not config.get(key)]
        if missing:
            raise UnsupportedConfig(
                f"config.json has no {', '.join(missing)}: "
                "Lathe can estimate only llama-style decoder models."
            )
        heads = int(config["num_attention_heads"])
        model_type = config.get("model_type") or config_json.get("model_type") or ""
        return cls(
            hidden_size=int(config["hidden_size"]),
            intermediate_size=int(config["intermediate_size"]),
            num_hidden_layers=int(config["num_hidden_layers"]),
            num_attention_heads=heads,
            num_key_value_heads=int(config.get("num_key_value_heads") or heads),
            vocab_size=int(config["vocab_size"]),
            # Missing means untied for Llama and Qwen2 configs; untied is also the larger estimate.
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            max_position_embeddings=int(config.get("max_position_embeddings") or 2048),
            head_dim=int(config["head_dim"]) if config.get("head_dim") else None,
            # Qwen2 configs don't say so, but the architecture always has q/k/v biases.
            attention_bias=bool(config.get("attention_bias", model_type == "qwen2")),
        )


@dataclass(frozen=True)
class ModelPreset:
    hf_id: str
    display_name: str
    architecture: str  # model_type in config.json
    shape: ArchShape
    parameter_count: int  # as published on the model's Hub page
    instruct: bool
    chat_template: str = "chatml"

    @property
    def lora_target_presets(self) -> dict[str, tuple[str, ...]]:
        return LORA_TARGET_PRESETS


SMOLLM2_135M = ArchShape(
    hidden_size=576,
    intermediate_size=1536,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    vocab_size=49152,
    tie_word_embeddings=True,
    max_position_embeddings=8192,
)

# size label: (hidden, intermediate, layers, heads, kv heads, vocab, tied, base context, parameters)
_QWEN25 = {
    "0.5B": (896, 4864, 24, 14, 2, 151936, True, 32768, 494_032_768),
    "1.5B": (1536, 8960, 28, 12, 2, 151936, True, 131072, 1_543_714_304),
    "3B": (2048, 11008, 36, 16, 2, 151936, True, 32768, 3_085_938_688),
    "7B": (3584, 18944, 28, 28, 4, 152064, False, 131072, 7_615_616_512),
    "14B": (5120, 13824, 48, 40, 8, 152064, False, 131072, 14_770_033_664),
    "32B": (5120, 27648, 64, 40, 8, 152064, False, 131072, 32_763_876_352),
    "72B": (8192, 29568, 80, 64, 8, 152064, False, 131072, 72_706_203_648),
}
_INSTRUCT_CONTEXT = 32768


def _qwen25_presets() -> list[ModelPreset]:
    presets = []
    for size, (h, i, layers, heads, kv, vocab, tied, context, count) in _QWEN25.items():
        for instruct in (False, True):
            shape = ArchShape(
                hidden_size=h,
                intermediate_size=i,
                num_hidden_layers=layers,
                num_attention_heads=heads,
                num_key_value_heads=kv,
                vocab_size=vocab,
                tie_word_embeddings=tied,
                max_position_embeddings=_INSTRUCT_CONTEXT if instruct else context,
                attention_bias=True,
            )
            suffix = "-Instruct" if instruct else ""
            presets.append(
                ModelPreset(
                    hf_id=f"Qwen/Qwen2.5-{size}{suffix}",
                    display_name=f"Qwen2.5 {size}{' Instruct' if instruct else ' (base)'}",
                    architecture="qwen2",
                    shape=shape,
                    parameter_count=count,
                    instruct=instruct,
                )
            )
    return presets


PRESETS: list[ModelPreset] = [
    ModelPreset(
        hf_id=DEMO_MODEL_ID,
        display_name="SmolLM2 135M Instruct (demo)",
        architecture="llama",
        shape=SMOLLM2_135M,
        parameter_count=134_515_008,
        instruct=True,
    ),
    *_qwen25_presets(),
]

_BY_ID = {preset.hf_id.lower(): preset for preset in PRESETS}


def preset_for(hf_id: str) -> ModelPreset | None:
    """The preset for a Hugging Face id (case-insensitive, as the Hub treats ids), or None."""
    return _BY_ID.get(hf_id.strip().lower())
