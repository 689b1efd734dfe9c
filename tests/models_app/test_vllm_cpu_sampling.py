"""Top-p without sorting the vocabulary keeps exactly the tokens vLLM's own top-p keeps."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
topk_topp_sampler = pytest.importorskip("vllm.v1.sample.ops.topk_topp_sampler")

from models_app.ml.vllm_cpu_sampling import top_p_without_sort  # noqa: E402

VOCAB = 49_152


def vllm_top_p(logits, k, p):
    """vLLM's own top-p on a CPU (sorting the vocabulary), the reference."""
    return topk_topp_sampler.apply_top_k_top_p_pytorch(logits, k, p, allow_cpu_sync=True)


def language_model_logits(rows: int, seed: int, temperature: float = 0.7):
    """A few likely tokens over a long tail, as a trained model's logits look."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, VOCAB, generator=generator) * 2
    head = torch.randint(0, VOCAB, (rows, 40), generator=generator)
    logits.scatter_add_(1, head, torch.randn(rows, 40, generator=generator) * 3 + 8)
    return logits / temperature


@pytest.mark.parametrize("top_p", [0.05, 0.5, 0.9, 0.95, 0.999])
def test_it_keeps_the_same_tokens_as_vllm(top_p):
    logits = language_model_logits(16, seed=int(top_p * 1000))
    p = torch.full((16,), top_p)
    ours = top_p_without_sort(logits.clone(), p, fallback=vllm_top_p)
    theirs = vllm_top_p(logits.clone(), None, p)
    assert torch.equal(torch.isinf(ours), torch.isinf(theirs))
    kept = torch.isfinite(ours)
    assert torch.equal(ours[kept], logits[kept])  # surviving logits are untouched


def test_it_falls_back_to_the_full_sort_for_flat_rows_and_leaves_p_1_rows_alone():
    logits = language_model_logits(4, seed=3)
    logits[1] = torch.randn(VOCAB, generator=torch.Generator().manual_seed(4)) * 0.01  # nearly uniform
    p = torch.tensor([0.9, 0.9, 1.0, 0.3])
    calls = []

    def counting_fallback(rows, k, p_rows):
        calls.append(rows.shape[0])
        return vllm_top_p(rows, k, p_rows)

    ours = top_p_without_sort(logits.clone(), p, fallback=counting_fallback)
    theirs = vllm_top_p(logits.clone(), None, p)
    assert calls == [1]  # only the flat row needed the sort
    assert torch.isfinite(ours[1]).sum() > 256  # its nucleus is wider than the candidates looked at
    assert torch.equal(torch.isinf(ours), torch.isinf(theirs))
    assert torch.isfinite(ours[2]).all()


def test_it_keeps_at_least_one_token():
    logits = torch.zeros(2, VOCAB)
    logits[:, 7] = 50.0  # one token holds all the mass
    ours = top_p_without_sort(logits.clone(), torch.tensor([0.5, 1e-6]), fallback=vllm_top_p)
    assert torch.isfinite(ours).sum(dim=-1).tolist() == [1, 1]
    assert torch.isfinite(ours[:, 7]).all()


def test_the_session_vllm_samples_top_p_through_it(vllm_server):
    """The server Lathe starts (models_app.ml.vllm_entry) samples through it, with vLLM's meaning of top_p."""
    import httpx

    from models_app.ml.demo_model import DEMO_MODEL_ID
    from models_app.ml.patches.vllm import ANNOUNCEMENT

    def answer(**sampling) -> str:
        response = httpx.post(
            f"{vllm_server.base_url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {vllm_server.secret}"},
            json={
                "model": DEMO_MODEL_ID,
                "messages": [{"role": "user", "content": "Name three colours."}],
                "max_tokens": 12,
                **sampling,
            },
            timeout=120,
        )
        response.raise_for_status()
        return response.json()["choices"][0]["message"]["content"]

    greedy = answer(temperature=0)
    # A nucleus this small holds one token, the most probable one: sampling becomes greedy.
    assert answer(temperature=1.0, top_p=1e-6, seed=5) == greedy
    assert answer(temperature=0.7, top_p=0.9, seed=5)
    assert ANNOUNCEMENT in vllm_server.log_path.read_text(errors="replace")
