#!/usr/bin/env python3
"""LoRA training throughput on one GPU: the seed's recipe against ours.

Qwen2.5-7B's shape (Qwen2Config) with random bf16 weights built on the GPU; LoRA r=64, alpha=16,
dropout 0.1 on q/k/v/o_proj (peft); bf16 autocast. Random token ids, lengths uniform in [256, 2048],
loss on the last 40% of each sequence (the "assistant" part); every config times the same 8
sequences per optimizer step. Needs only torch, transformers, peft and the stdlib.

Layouts. single: micro-batch 1, no padding (the seed: DataCollatorForSeq2Seq pads to the longest
in a batch of 1, i.e. not at all), gradient accumulation over 8. grouped: sequences sorted by length
over the whole pool (as group_by_length does), right-padded micro-batches of up to `cap` padded
tokens with NO attention mask (under a causal mask no real token sees the padding after it, so sdpa
keeps is_causal=True). packed: rows of up to `cap` tokens, position_ids restarting per sequence and
an explicit block-diagonal causal 4D bool mask (no flash-attn on the GPU machine, so sdpa runs its
masked kernel over the whole row). Seed loss: transformers' own (full-vocab fp32 logits everywhere,
mean per micro-batch / 8). Ours: lm_head only at labelled positions, sum / labelled tokens per step.

GPU (about 2-3 min; configs that would end past 390 s are skipped), each config a JSON line, also
appended to $OUT/train_gpu.jsonl:  PYTHONUNBUFFERED=1 python3 bench/train_gpu.py --budget-seconds 390
CPU test:  .venv/bin/python bench/train_gpu.py --tiny
"""

import argparse
import gc
import json
import os
import sys
import time

T0 = time.time()
os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")  # set before torch loads
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import peft  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402
from transformers import AutoModelForCausalLM, Qwen2Config  # noqa: E402

PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12}
FORMULA = (
    "model_flops = 6*N*T_real + 12*n_layers*d_model*sum(len_i^2); N = all weights but the input "
    "embedding table (lm_head included), T_real = non-padding tokens, attention term as in PaLM (not "
    "halved for causality). One formula for all configs, so MFU ratios = tokens/s ratios. A frozen "
    "base under LoRA does ~4*N*T (no weight grads), +2*N*T when checkpointing recomputes the forward."
)


def emit(rec):
    rec["elapsed_s"] = round(time.time() - T0, 1)
    line = json.dumps(rec, default=str)
    print(line, flush=True)
    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], "train_gpu.jsonl"), "a") as f:
            f.write(line + "\n")


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def make_seqs(n, lo, hi, vocab, seed):
    g, out = torch.Generator().manual_seed(seed), []
    for _ in range(n):
        n_tok = int(torch.randint(lo, hi + 1, (1,), generator=g))
        ids = torch.randint(0, vocab, (n_tok,), generator=g)
        labels = torch.where(torch.arange(n_tok) < n_tok - int(0.4 * n_tok), -100, ids)  # prompt: no loss
        out.append((ids, labels))
    return out


def split(chunk, too_big):
    """Cut a list of sequences into consecutive groups; a group closes when adding one more is too_big."""
    groups = [[]]
    for s in chunk:
        if groups[-1] and too_big(groups[-1] + [s]):
            groups.append([])
        groups[-1].append(s)
    return groups


def steps_for(layout, seqs, per_step, cap, dev):
    """Split seqs into optimizer steps of `per_step` sequences, each a list of micro-batches."""
    if layout == "grouped":  # pool-wide sort, longest first
        seqs = sorted(seqs, key=lambda s: -len(s[0]))
    steps = []
    for k in range(0, len(seqs), per_step):
        chunk, mbs = seqs[k : k + per_step], []
        if layout == "single":
            mbs = [dict(ids=i[None], labels=lab[None], lens=[len(i)]) for i, lab in chunk]
        elif layout == "grouped":  # right-pad each group to its first (longest) sequence
            for g in split(chunk, lambda g: len(g[0][0]) * len(g) > cap):
                ids = torch.zeros(len(g), len(g[0][0]), dtype=torch.long)
                labels = torch.full_like(ids, -100)
                for r, (i, lab) in enumerate(g):
                    ids[r, : len(i)], labels[r, : len(lab)] = i, lab
                mbs.append(dict(ids=ids, labels=labels, lens=[len(i) for i, _ in g]))
        else:  # packed, greedily in the original order
            for g in split(chunk, lambda g: sum(len(i) for i, _ in g) > cap):
                lens = [len(i) for i, _ in g]
                mbs.append(
                    dict(
                        ids=torch.cat([i for i, _ in g])[None],
                        labels=torch.cat([lab for _, lab in g])[None],
                        pos=torch.cat([torch.arange(n) for n in lens])[None],
                        seg=torch.cat([torch.full((n,), j) for j, n in enumerate(lens)]),
                        lens=lens,
                    )
                )
        for mb in mbs:
            mb["n_lab"] = int((mb["labels"][:, 1:] != -100).sum())
            mb.update({key: v.to(dev) for key, v in mb.items() if isinstance(v, torch.Tensor)})
        steps.append(mbs)
    return steps


def block_mask(seg):
    """(1, 1, L, L) bool, True = may attend: causal and inside the same packed sequence."""
    return torch.tril(seg[:, None] == seg[None, :])[None, None]


def forward_loss(lm, mb, loss_mode, n_micro, n_labels):
    if loss_mode == "hf":  # the seed: transformers computes every logit and a mean loss
        return lm(input_ids=mb["ids"], labels=mb["labels"], use_cache=False).loss / n_micro
    mask = block_mask(mb["seg"]) if "seg" in mb else None
    h = lm.model(
        input_ids=mb["ids"], position_ids=mb.get("pos"), attention_mask=mask, use_cache=False
    ).last_hidden_state
    tgt = mb["labels"][:, 1:]
    keep = tgt != -100
    return F.cross_entropy(lm.lm_head(h[:, :-1][keep]).float(), tgt[keep], reduction="sum") / n_labels


def run_config(c, lm, params, lora_init, warm_seqs, timed_seqs, args, dev, info, budget_end):
    with torch.no_grad():  # fresh LoRA weights, and whatever the last config (or its OOM) left is freed
        for name, p in params:
            p.copy_(lora_init[name])
            p.grad = None
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    if c["ckpt"]:  # trl's default, non-reentrant
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        lm.gradient_checkpointing_disable()
    lm.train()
    if c.get("pre"):
        c["pre"](lm)
    plist = [p for _, p in params]
    opt = torch.optim.AdamW(plist, lr=2e-4, weight_decay=0.0, fused=c["fused"])  # None: as adamw_torch
    warm = steps_for(c["layout"], warm_seqs, args.per_step, c["cap"], dev)
    timed = steps_for(c["layout"], timed_seqs, args.per_step, c["cap"], dev)

    def one_step(mbs):
        n_labels, total = sum(mb["n_lab"] for mb in mbs), torch.zeros((), device=dev)
        for mb in mbs:
            with torch.autocast(dev.type, dtype=torch.bfloat16):
                loss = forward_loss(lm, mb, c["loss"], len(mbs), n_labels)
            loss.backward()
            total += loss.detach()
        torch.nn.utils.clip_grad_norm_(plist, 1.0)  # Trainer's max_grad_norm=1.0
        opt.step()
        opt.zero_grad(set_to_none=True)
        return total

    for mbs in warm:
        one_step(mbs)
    sync(dev)
    times, losses, done = [], [], []
    for mbs in timed:
        if time.time() > budget_end:
            break
        t = time.perf_counter()
        loss = one_step(mbs)
        sync(dev)
        times.append(time.perf_counter() - t)
        losses.append(float(loss))
        done.append(mbs)
    if not times:
        return dict(status="skipped", why="budget ran out during warm-up")
    lens = [n for mbs in done for mb in mbs for n in mb["lens"]]
    t_real, t_padded, secs = sum(lens), sum(mb["ids"].numel() for mbs in done for mb in mbs), sum(times)
    attention = 12 * info["layers"] * info["hidden"] * sum(n * n for n in lens)
    flops = 6 * info["n_matmul"] * t_real + attention
    rec = dict(
        status="ok" if len(times) == len(timed) else "partial",
        timed_steps=len(times),
        real_tokens=t_real,
        padded_tokens=t_padded,
        padding_frac=round(1 - t_real / t_padded, 4),
        micro_batches_per_step=round(sum(len(m) for m in done) / len(done), 2),
        real_tokens_per_s=round(t_real / secs, 1),
        step_s_mean=round(secs / len(times), 4),
        step_s_all=[round(x, 3) for x in times],
        model_tflops_per_s=round(flops / secs / 1e12, 1),
        loss_first=round(losses[0], 4),
        loss_last=round(losses[-1], 4),
    )
    if info.get("peak"):  # datasheet dense bf16; KINDS.md measured ~790 TFLOP/s for 8192^3 on H100/H200
        rec["mfu_vs_peak"] = round(flops / secs / info["peak"], 4)
    if dev.type == "cuda":
        rec["peak_mem_alloc_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        rec["peak_mem_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
    if not all(x == x and abs(x) < 1e4 for x in losses):
        rec["status"] = "nonfinite_loss"
    return rec


def attempt(*a):
    try:
        return run_config(*a)
    except torch.cuda.OutOfMemoryError as e:
        return dict(status="oom", error=str(e)[:300])
    except Exception as e:  # record it and go on with the next config
        return dict(status="error", error=repr(e)[:500])


@torch.no_grad()
def check_packing(lm, dev, vocab, la, lb):
    """Relative difference of sequence b's last hidden states: alone vs packed after a sequence a."""
    lm.eval()
    g = torch.Generator().manual_seed(7)
    a, b = torch.randint(0, vocab, (la,), generator=g), torch.randint(0, vocab, (lb,), generator=g)
    ids = torch.cat([a, b])[None].to(dev)
    pos = torch.cat([torch.arange(la), torch.arange(lb)])[None].to(dev)
    mask = block_mask((torch.arange(la + lb) >= la).long().to(dev))
    variants = {
        "explicit_block_mask (used by packed)": dict(position_ids=pos, attention_mask=mask),
        "position_ids_only (transformers detects packing)": dict(position_ids=pos),
        "no_boundary (contaminated, for contrast)": dict(),
    }
    with torch.autocast(dev.type, dtype=torch.bfloat16):
        ref = lm.model(input_ids=b[None].to(dev), use_cache=False).last_hidden_state[0].float()
        hs = {
            k: lm.model(input_ids=ids, use_cache=False, **kw).last_hidden_state[0, la:].float()
            for k, kw in variants.items()
        }
    lm.train()
    return {k: round(((h - ref).norm() / ref.norm()).item(), 5) for k, h in hs.items()}


def build(args, dev, peak):
    if args.tiny:
        seq, cfg = (
            256,
            Qwen2Config(
                hidden_size=64,
                intermediate_size=128,
                num_hidden_layers=2,
                num_attention_heads=4,
                num_key_value_heads=2,
                vocab_size=1000,
            ),
        )
    else:
        seq, cfg = (
            2048,
            Qwen2Config(
                hidden_size=3584,
                intermediate_size=18944,
                num_hidden_layers=28,
                num_attention_heads=28,
                num_key_value_heads=4,
                vocab_size=152064,
                max_position_embeddings=32768,
                tie_word_embeddings=False,
                rope_parameters={"rope_type": "default", "rope_theta": 1e6},
            ),
        )
    cfg.use_cache = False
    t = time.time()
    with torch.device(dev):  # random init straight on the GPU
        base = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
    sync(dev)
    n_total = sum(p.numel() for p in base.parameters())
    info = dict(
        peak=peak,
        layers=cfg.num_hidden_layers,
        hidden=cfg.hidden_size,
        vocab=cfg.vocab_size,
        n_matmul=n_total - base.get_input_embeddings().weight.numel(),
    )
    model = get_peft_model(
        base,
        LoraConfig(
            r=64,
            lora_alpha=16,
            lora_dropout=0.1,
            bias="none",
            task_type="CAUSAL_LM",
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        ),
    )
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    rec = dict(
        kind="build",
        build_s=round(time.time() - t, 1),
        params_total=n_total,
        params_matmul=info["n_matmul"],
        lora_params=sum(p.numel() for _, p in params),
        lora_dtype=str(params[0][1].dtype),
        attn_implementation=base.config._attn_implementation,
    )
    return seq, model.get_base_model(), params, info, rec


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="2-layer toy Qwen2, seq 256: a test for a CPU")
    ap.add_argument("--budget-seconds", type=float, default=390.0, help="wall budget counted from start")
    ap.add_argument("--warmup", type=int, default=2, help="warm-up optimizer steps per config")
    ap.add_argument("--steps", type=int, default=10, help="timed optimizer steps per config")
    ap.add_argument("--per-step", type=int, default=8, help="sequences per optimizer step (seed: 1 x 8)")
    ap.add_argument(
        "--cap",
        type=int,
        default=0,
        help="tokens per micro-batch, ours without checkpointing "
        "(0 = auto: 4*seq on GPUs over 100 GiB, else 2*seq; halved once on OOM)",
    )
    ap.add_argument("--only", default="", help="comma-separated config names to run")
    args = ap.parse_args()
    budget_end = T0 + args.budget_seconds
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    env = dict(
        kind="env",
        python=sys.version.split()[0],
        torch=torch.__version__,
        device=str(dev),
        transformers=transformers.__version__,
        peft=peft.__version__,
        formula=FORMULA,
    )
    peak, big = None, False
    if dev.type == "cuda":
        name, total = torch.cuda.get_device_name(0), torch.cuda.get_device_properties(0).total_memory
        peak, big = next((v for k, v in PEAK_BF16.items() if k in name), None), total > 100 * 2**30
        env.update(
            gpu=name,
            gpu_mem_gib=round(total / 2**30, 1),
            cuda=torch.version.cuda,
            peak_bf16_tflops_assumed=peak and peak / 1e12,
        )
    emit(env)

    seq, lm, params, info, built = build(args, dev, peak)
    lora_init = {n: p.detach().clone() for n, p in params}
    cap = args.cap or (4 * seq if big else 2 * seq)
    if dev.type == "cuda":
        built["mem_after_build_gib"] = round(torch.cuda.memory_allocated() / 2**30, 2)
    try:
        built["packing_check_rel_diff"] = check_packing(lm, dev, info["vocab"], seq // 8 + 44, seq // 4 + 12)
    except Exception as e:
        built["packing_check_error"] = repr(e)[:300]
    emit(built)

    warm_seqs = make_seqs(args.warmup * args.per_step, seq // 8, seq, info["vocab"], seed=1)
    timed_seqs = make_seqs(args.steps * args.per_step, seq // 8, seq, info["vocab"], seed=2)
    seed, ours = dict(fused=None, loss="hf"), dict(fused=True, loss="sel")
    configs = [  # "ours" = no checkpointing, fused AdamW, lm_head on labelled positions only
        dict(
            name="A_seed",
            layout="single",
            ckpt=True,
            cap=seq,
            **seed,
            what="bs1 x ga8, checkpointing (use_reentrant=False), sdpa, torch-default AdamW, HF loss",
        ),
        dict(
            name="B_ours_grouped",
            layout="grouped",
            ckpt=False,
            cap=cap,
            **ours,
            what="ours, length-grouped right-padded micro-batches",
        ),
        dict(
            name="B_ours_packed",
            layout="packed",
            ckpt=False,
            cap=cap,
            **ours,
            what="ours, packed rows: position_ids + block-diagonal mask (sdpa masked kernel)",
        ),
        dict(
            name="C_ours_grouped_ckpt",
            layout="grouped",
            ckpt=True,
            cap=8 * seq,
            **ours,
            what="B_ours_grouped with checkpointing, all 8 sequences in one micro-batch",
        ),
        dict(
            name="A_seed_no_ckpt",
            layout="single",
            ckpt=False,
            cap=seq,
            **seed,
            what="A_seed, checkpointing off: the seed's code as written (its TrainingArguments keep "
            "gradient_checkpointing=False through SFTTrainer's conversion to SFTConfig)",
        ),
        dict(
            name="B_ours_single",
            layout="single",
            ckpt=False,
            cap=seq,
            **ours,
            what="ours at bs1 x ga8: A_seed_no_ckpt + fused AdamW + labelled-only lm_head",
        ),
    ]
    try:  # Liger patches the model for good, so its config runs last
        from liger_kernel.transformers import apply_liger_kernel_to_qwen2 as liger  # rope, rms_norm, swiglu

        configs.append(
            dict(
                name="B_ours_grouped_liger",
                layout="grouped",
                ckpt=False,
                cap=cap,
                **ours,
                what="B_ours_grouped + Liger rope/rms_norm/swiglu kernels",
                pre=lambda m: liger(cross_entropy=False, fused_linear_cross_entropy=False, model=m),
            )
        )
    except Exception as e:
        emit(dict(kind="note", liger="not importable, skipped: " + repr(e)[:120]))
    if args.only:
        configs = [c for c in configs if c["name"] in args.only.split(",")]

    results, longest = [], 0.0
    ctx = (lm, params, lora_init, warm_seqs, timed_seqs, args, dev, info, budget_end)
    for c in configs:
        est = 1.0 if args.tiny else max(45.0, 1.3 * longest)
        rec = dict(
            kind="config",
            name=c["name"],
            layout=c["layout"],
            checkpointing=c["ckpt"],
            adamw="fused" if c["fused"] else "torch default (foreach)",
            loss=c["loss"],
            cap_tokens=c["cap"],
            what=c["what"],
        )
        if time.time() + est > budget_end:
            rec.update(status="skipped", why=f"budget: {budget_end - time.time():.0f}s left, need {est:.0f}s")
        else:
            t = time.time()
            res = attempt(c, *ctx)
            if (
                res["status"] == "oom"
                and not c["ckpt"]
                and c["layout"] != "single"
                and c["cap"] >= 2 * seq
                and time.time() + est < budget_end
            ):  # retry once at half the cap
                rec["oom_at_cap"], c["cap"] = c["cap"], c["cap"] // 2
                rec["cap_tokens"] = c["cap"]
                res = attempt(c, *ctx)
            rec.update(res, config_s=round(time.time() - t, 1))
            longest = max(longest, rec["config_s"])
        emit(rec)
        results.append(rec)

    base = next((r.get("real_tokens_per_s") for r in results if r["name"] == "A_seed"), None)
    print(
        f"\n{'config':22} {'status':8} {'cap':>6} {'tok/s':>9} {'x seed':>7} {'step s':>7} {'MFU':>6} "
        f"{'peakGiB':>8} pad"
    )
    for r in results:
        tps, step, mfu = r.get("real_tokens_per_s"), r.get("step_s_mean", "-"), r.get("mfu_vs_peak", "-")
        ratio = f"{tps / base:.2f}" if tps and base else "-"
        print(
            f"{r['name']:22} {r['status']:8} {r['cap_tokens']:>6} {tps or '-':>9} {ratio:>7} {step:>7} "
            f"{mfu:>6} {r.get('peak_mem_alloc_gib', '-'):>8} {r.get('padding_frac', '-')}"
        )
    print(f"total {time.time() - T0:.0f}s. MFU: {FORMULA.split(';')[0]}", flush=True)


if __name__ == "__main__":
    main()
