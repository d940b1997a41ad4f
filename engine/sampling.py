"""Per-row sampling: many grid cells, samples and both variants in ONE ``generate`` call.

Each row carries its own temperature, top-k, top-p and seed. :class:`PerRowSampler` applies them in
transformers' order (temperature -> top-k -> top-p, with transformers' semantics: k=0 disables top-k,
p=1 disables top-p) and draws the token itself from a per-row stream of uniforms, so a row's text
depends only on its own seed and settings, never on its neighbours in the batch. ``generate`` runs
with ``do_sample=False`` so none of transformers' own warpers (nor its historic default top_k=50)
touch the scores; our processor returns scores where only the drawn token is finite.

Top-k is applied on a ``topk`` of the scores (k_max candidates) rather than a full-vocabulary sort,
and top-p only over those candidates, which is what makes big batches cheap on a 32k vocabulary.

With ``record_logprobs`` (the default) the same processor also records, before any warping, each
row's log-probability of the token it draws and the entropy of the model's own distribution (the
softmax of the raw logits: temperature 1, no top-k/top-p); engine/metrics/tokens.py summarises them
per answer. One ``exp`` over the vocabulary per step, shared by both, in reused buffers: on the
``medium`` bench model 13.7 ms of CPU time per 192-row step, about 3 % of the step (bench/RESULTS.md;
target <= 5 %). Computing them after ``generate`` from its returned logits measured 2.5x the call.
It also applies ``min_new_tokens`` itself (stop tokens masked after the statistics are taken), so
the recorded distribution is the model's, not one with the stop tokens removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList
from transformers.generation.streamers import BaseStreamer

from engine.metrics.tokens import TokenStats, token_stats
from engine.models import LoadedModel

BASE_ADAPTER_NAME = "__base__"  # peft's name for "no adapter" in per-row adapter_names


@dataclass(frozen=True)
class RowSpec:
    """One sequence to generate: which prompt, which variant, which sampling settings, which seed."""

    prompt_text: str  # the full chat-formatted prompt (generation prompt included)
    variant: str  # "base" or "finetuned"
    temperature: float
    top_p: float
    top_k: int
    seed: int


@dataclass
class RowResult:
    text: str
    new_tokens: int
    token_ids: list[int] = field(default_factory=list)
    # Per answer token (the stop token and padding excluded); empty when not recorded.
    token_logprobs: list[float] = field(default_factory=list)
    token_entropies: list[float] = field(default_factory=list)

    @property
    def token_stats(self) -> TokenStats | None:
        """Mean/min log-prob and mean/max entropy of the answer's tokens (None: not recorded or no token)."""
        return token_stats(self.token_logprobs, self.token_entropies)


def row_seed(*parts: Any) -> int:
    """A stable 63-bit seed from any values (independent of Python's hash randomisation)."""
    digest = hashlib.sha256("\x1f".join(repr(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


def row_uniforms(seeds: Sequence[int], steps: int) -> torch.Tensor:
    """A [rows, steps] tensor of U(0,1) draws; row i comes from its own generator seeded seeds[i]."""
    out = torch.empty(len(seeds), steps, dtype=torch.float64)
    for index, seed in enumerate(seeds):
        generator = torch.Generator().manual_seed(int(seed))
        out[index] = torch.rand(steps, generator=generator, dtype=torch.float64)
    return out


def filtered_logits(
    scores: torch.Tensor, temperatures: torch.Tensor, top_ks: torch.Tensor, top_ps: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply per-row temperature, top-k, top-p. Returns (candidate logits [B, K], their token ids [B, K]).

    Candidates are sorted by descending logit; filtered-out candidates are -inf.
    """
    vocab = scores.shape[-1]
    k_eff = torch.where((top_ks <= 0) | (top_ks > vocab), torch.full_like(top_ks, vocab), top_ks)
    k_max = int(k_eff.max())
    # A positive temperature keeps the order, so select first and divide only the k_max candidates
    # (the same values transformers gets by dividing the whole vocabulary first).
    if k_max < vocab:
        values, indices = torch.topk(scores, k_max, dim=-1)
    else:
        values, indices = torch.sort(scores, dim=-1, descending=True)
    values = values.float() / temperatures[:, None].float()
    positions = torch.arange(values.shape[-1], device=values.device)
    values = values.masked_fill(positions[None, :] >= k_eff[:, None], float("-inf"))
    # top-p on the descending order: keep a token while the mass strictly before it is < p, which is
    # transformers' rule (drop where the ascending cumulative mass <= 1 - p), keeping at least one.
    probs = torch.softmax(values, dim=-1)
    mass_before = torch.cumsum(probs, dim=-1) - probs
    drop = (mass_before >= top_ps[:, None]) & (top_ps[:, None] < 1.0)
    drop[:, 0] = False
    values = values.masked_fill(drop, float("-inf"))
    return values, indices


_CPU_ENTROPY_CHUNK = 16  # rows per pass on CPU (16 x 32064 floats = 2 MB per scratch buffer)


class PerRowSampler(LogitsProcessor):
    """Per-row temperature/top-k/top-p sampling inside the logits processor (see module docstring)."""

    def __init__(
        self,
        rows: Sequence[RowSpec],
        max_new_tokens: int,
        device: torch.device | str,
        *,
        record_logprobs: bool = False,
        min_new_tokens: int = 0,
        stop_ids: Sequence[int] = (),
    ):
        self.temperatures = torch.tensor([max(r.temperature, 1e-5) for r in rows], device=device)
        self.top_ks = torch.tensor([int(r.top_k) for r in rows], device=device)
        self.top_ps = torch.tensor([float(r.top_p) for r in rows], device=device)
        self.uniforms = row_uniforms([r.seed for r in rows], max_new_tokens).to(device)
        self.min_new_tokens = int(min_new_tokens)
        self.stop_ids = torch.tensor(sorted(set(stop_ids)), dtype=torch.long, device=device)
        self.step = 0
        self.record_logprobs = record_logprobs
        # [rows, steps]: the chosen token's log-prob and the distribution's entropy at each step.
        self.token_logprobs = torch.zeros(len(rows), max_new_tokens, device=device) if record_logprobs else None
        self.token_entropies = torch.zeros(len(rows), max_new_tokens, device=device) if record_logprobs else None
        self._shifted: torch.Tensor | None = None  # scratch [chunk, vocab] buffers, reused every step
        self._exp: torch.Tensor | None = None
        self._log_z: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        column = min(self.step, self.uniforms.shape[1] - 1)
        log_z = self._record_entropy(scores, column) if self.record_logprobs else None
        if self.step < self.min_new_tokens and self.stop_ids.numel():
            scores[:, self.stop_ids] = float("-inf")  # what transformers' min_new_tokens does
        values, indices = filtered_logits(scores, self.temperatures, self.top_ks, self.top_ps)
        probs = torch.softmax(values.double(), dim=-1)
        cdf = torch.cumsum(probs, dim=-1)
        u = self.uniforms[:, column]
        target = (u * cdf[:, -1]).unsqueeze(-1)
        choice = torch.searchsorted(cdf, target, right=True).clamp_(max=values.shape[-1] - 1)
        # Guard against landing on a zero-probability tail position through rounding.
        allowed = torch.isfinite(values.gather(1, choice))
        choice = torch.where(allowed, choice, torch.zeros_like(choice))
        tokens = indices.gather(1, choice)
        if log_z is not None:
            assert self.token_logprobs is not None
            # The drawn token is never a masked stop token, so its score is still the raw logit.
            self.token_logprobs[:, column] = scores.gather(1, tokens).squeeze(1) - log_z
        self.step += 1
        # In place: ``scores`` is generate's private float32 copy of this step's logits.
        return scores.fill_(float("-inf")).scatter_(1, tokens, 0.0)

    def _record_entropy(self, scores: torch.Tensor, column: int) -> torch.Tensor:
        """Store this step's entropy of softmax(scores); returns each row's log-partition log Σ exp(scores).

        H = log Z - sum(e * s') / Z with s' = scores - max, e = exp(s'), Z = sum(e): one exp over the
        vocabulary; log Σ exp(scores) = log Z + max.
        On CPU the rows go through in chunks small enough that s' and e stay in cache between the
        passes (14.6 against 19.6 ms of CPU time per step for 192 rows x 32064, one thread).
        """
        rows, vocab = scores.shape
        chunk = rows if scores.is_cuda else min(rows, _CPU_ENTROPY_CHUNK)
        if self._shifted is None or self._shifted.shape != (chunk, vocab):
            self._shifted = torch.empty(chunk, vocab, dtype=torch.float32, device=scores.device)
            self._exp = torch.empty(chunk, vocab, dtype=torch.float32, device=scores.device)
            self._log_z = torch.empty(rows, dtype=torch.float32, device=scores.device)
        assert self._exp is not None and self._log_z is not None and self.token_entropies is not None
        log_z_all = self._log_z
        for start in range(0, rows, chunk):
            part = scores[start : start + chunk]
            size = part.shape[0]
            peak = part.amax(dim=-1, keepdim=True)
            shifted = torch.sub(part, peak, out=self._shifted[:size])
            weights = torch.exp(shifted, out=self._exp[:size])
            z = weights.sum(dim=-1)
            log_z = z.log()
            entropy = log_z - torch.linalg.vecdot(weights, shifted) / z
            bad = torch.isnan(entropy)
            if bad.any():  # a -inf logit (a processor before ours masked it): 0 * -inf; rare, so recompute
                entropy[bad] = torch.special.entr(torch.softmax(part[bad].float(), dim=-1)).sum(dim=-1)
            self.token_entropies[start : start + size, column] = entropy
            # log Z of the raw scores: the chosen token's log-prob is its raw logit minus this.
            log_z_all[start : start + size] = log_z + peak.squeeze(1)
        return log_z_all


class _RowStreamer(BaseStreamer):
    """Collects each step's new tokens for every row and hands them to a queue (for live streaming)."""

    def __init__(self, sink: queue.Queue):
        self.sink = sink
        self.first = True

    def put(self, value: torch.Tensor) -> None:
        if self.first:  # the prompt
            self.first = False
            return
        self.sink.put(value.reshape(-1).tolist())

    def end(self) -> None:
        self.sink.put(None)


def _adapter_routing(loaded: LoadedModel, rows: Sequence[RowSpec]) -> tuple[dict[str, Any], bool]:
    """How to run these rows on the one loaded model: (generate kwargs, run with the adapter disabled).

    A batch of one variant needs no per-row routing: base rows run under ``disable_adapter()``,
    fine-tuned rows run plainly. Only a mixed batch uses peft's per-row ``adapter_names``, which
    gathers and scatters rows inside every LoRA layer and so costs more per row.
    """
    variants = {r.variant for r in rows}
    if not loaded.has_adapter:
        if variants - {"base"}:
            raise ValueError("a fine-tuned row needs a model loaded with its adapter")
        return {}, False
    if variants == {"base"}:
        return {}, True
    if variants == {"finetuned"}:
        return {}, False
    return {"adapter_names": [BASE_ADAPTER_NAME if r.variant == "base" else "default" for r in rows]}, False


def generate_rows(
    loaded: LoadedModel,
    rows: Sequence[RowSpec],
    *,
    max_new_tokens: int,
    min_new_tokens: int = 0,
    streamer: BaseStreamer | None = None,
    stopping_criteria: Any = None,
    record_logprobs: bool = True,
) -> list[RowResult]:
    """Generate every row in one ``generate`` call (left-padded prompts, per-row sampling and adapter).

    ``record_logprobs``: fill each result's token log-probs and entropies (see the module docstring).
    """
    tokenizer = loaded.tokenizer
    model = loaded.model
    device = loaded.device.device
    encoded = tokenizer(
        [r.prompt_text for r in rows], return_tensors="pt", padding=True, add_special_tokens=False
    ).to(device)
    sampler = PerRowSampler(
        rows,
        max_new_tokens,
        device,
        record_logprobs=record_logprobs,
        min_new_tokens=min_new_tokens,
        stop_ids=loaded.stop_ids,
    )
    kwargs, base_only = _adapter_routing(loaded, rows)
    adapter_off = model.disable_adapter() if base_only else contextlib.nullcontext()
    with torch.inference_mode(), adapter_off:
        prefix = _shared_prompt_cache(
            loaded, rows, encoded["input_ids"], kwargs.get("adapter_names"), max_new_tokens
        )
        if prefix is not None:
            kwargs["cache"] = prefix  # transformers 5 name (past_key_values is deprecated)
        output = model.generate(
            **encoded,
            logits_processor=LogitsProcessorList([sampler]),
            do_sample=False,
            # Explicitly neutral: the processor does all sampling (transformers 4 added top_k=50 otherwise).
            temperature=None,
            top_p=None,
            top_k=None,
            num_beams=1,
            max_new_tokens=max_new_tokens,
            min_new_tokens=None,  # applied by the processor, after it has read the raw distribution
            eos_token_id=loaded.stop_ids,
            pad_token_id=tokenizer.pad_token_id,
            use_cache=True,
            streamer=streamer,
            stopping_criteria=stopping_criteria,
            **kwargs,
        )
    new_ids = output[:, encoded["input_ids"].shape[1] :].tolist()
    results = [_finish_row(tokenizer, ids, loaded.stop_ids) for ids in new_ids]
    if sampler.token_logprobs is not None and sampler.token_entropies is not None:
        logprobs = sampler.token_logprobs.cpu().tolist()
        entropies = sampler.token_entropies.cpu().tolist()
        stop_ids = set(loaded.stop_ids)
        for index, result in enumerate(results):
            ids = result.token_ids
            answer = len(ids) - 1 if ids and ids[-1] in stop_ids else len(ids)  # the stop token is no answer
            result.token_logprobs = logprobs[index][:answer]
            result.token_entropies = entropies[index][:answer]
    return results


def _shared_prompt_cache(
    loaded: LoadedModel,
    rows: Sequence[RowSpec],
    input_ids: torch.Tensor,
    adapter_names: list[str] | None,
    max_new_tokens: int,
):
    """When every row has the same prompt, run the prompt once per variant and share its KV cache.

    In a batched sweep the prompt (often longer than the answer) would otherwise be recomputed for
    every row. The shared prefix goes into a preallocated static cache: a growing cache re-copies
    every row's keys and values at every step, which profiled at 40 % of a 96-row CPU call.
    Returns None when the rows' prompts differ.
    """
    from transformers import StaticCache

    if len(rows) < 2 or len({r.prompt_text for r in rows}) != 1 or input_ids.shape[1] < 2:
        return None
    prompt = input_ids[:1, :-1]  # generate feeds the last prompt token itself
    if adapter_names is None:
        prefix = loaded.model(input_ids=prompt, use_cache=True).cache
        row_source = torch.zeros(len(rows), dtype=torch.long, device=input_ids.device)
    else:
        distinct = sorted(set(adapter_names))
        prefix = loaded.model(
            input_ids=prompt.expand(len(distinct), -1), use_cache=True, adapter_names=distinct
        ).cache
        row_source = torch.tensor([distinct.index(n) for n in adapter_names], device=input_ids.device)
    config = loaded.model.config
    cache = StaticCache(config=config, max_cache_len=input_ids.shape[1] + max_new_tokens)
    for layer_index, layer in enumerate(prefix.layers):
        cache.update(layer.keys[row_source], layer.values[row_source], layer_index)
    return cache


def _finish_row(tokenizer, ids: list[int], stop_ids: Sequence[int]) -> RowResult:
    kept: list[int] = []
    for token in ids:
        kept.append(token)
        if token in stop_ids:
            break
    # Tokens beyond a random model's trained vocabulary decode to nothing; drop them first.
    vocab = len(tokenizer)
    text = tokenizer.decode([t for t in kept if t < vocab], skip_special_tokens=True).strip()
    return RowResult(text=text, new_tokens=len(kept), token_ids=kept)


def stream_rows(
    loaded: LoadedModel,
    rows: Sequence[RowSpec],
    *,
    max_new_tokens: int,
    should_stop: Callable[[], bool] | None = None,
    results: list[RowResult] | None = None,
) -> Iterator[list[str]]:
    """Yield every row's text so far after each decoding step; the last yield is the final texts.

    The tokens are exactly those of :func:`generate_rows` on the same rows (it is the same call).
    ``results``, when given, receives the final :class:`RowResult` of each row (with its token
    log-probs and entropies) before the last yield.
    """
    from transformers import StoppingCriteria, StoppingCriteriaList

    sink: queue.Queue = queue.Queue()
    streamer = _RowStreamer(sink)
    result: dict[str, Any] = {}

    class _Stop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            stop = bool(should_stop and should_stop())
            return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

    def work() -> None:
        try:
            result["rows"] = generate_rows(
                loaded,
                rows,
                max_new_tokens=max_new_tokens,
                streamer=streamer,
                stopping_criteria=StoppingCriteriaList([_Stop()]),
            )
        except BaseException as exc:  # surfaced to the consumer below
            result["error"] = exc
            sink.put(None)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    so_far: list[list[int]] = [[] for _ in rows]
    finished = [False] * len(rows)
    while True:
        step = sink.get()
        if step is None:
            break
        for index, token in enumerate(step):
            if finished[index]:
                continue
            so_far[index].append(token)
            if token in loaded.stop_ids:
                finished[index] = True
        yield [_finish_row(loaded.tokenizer, ids, loaded.stop_ids).text for ids in so_far]
    thread.join()
    if "error" in result:
        raise result["error"]
    if results is not None:
        results[:] = result["rows"]
    yield [r.text for r in result["rows"]]


def generate_reference(
    loaded: LoadedModel,
    prompt_text: str,
    *,
    variant: str,
    temperature: float,
    top_p: float,
    top_k: int,
    seed: int,
    max_new_tokens: int,
    min_new_tokens: int = 0,
) -> RowResult:
    """The original run's way: one ``generate`` call, one sample, transformers' own sampler.

    Every sampling parameter is passed explicitly (transformers 4 silently added top_k=50).
    Used by the benchmark's baseline and as a cross-check in tests.
    """
    from transformers import set_seed

    tokenizer = loaded.tokenizer
    encoded = tokenizer([prompt_text], return_tensors="pt", add_special_tokens=False).to(loaded.device.device)
    set_seed(seed % 2**32)  # numpy (seeded by set_seed) takes 32-bit seeds; row seeds are 63-bit
    model = loaded.model
    context = (
        model.disable_adapter() if (loaded.has_adapter and variant == "base") else contextlib.nullcontext()
    )
    with torch.inference_mode(), context:
        output = model.generate(
            **encoded,
            do_sample=True,
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            num_beams=1,
            max_new_tokens=max_new_tokens,
            min_new_tokens=min_new_tokens or None,
            eos_token_id=loaded.stop_ids,
            pad_token_id=tokenizer.pad_token_id,
        )
    ids = output[0, encoded["input_ids"].shape[1] :].tolist()
    return _finish_row(tokenizer, ids, loaded.stop_ids)


# Rows per CPU call: on 2 cores with the 58 M-parameter bench model, 144-192 rows per call were
# fastest (96: 79 s, 144: 69 s, 192: 68 s, 288: 73 s for 576 rows of 64 tokens).
CPU_BATCH_CAP = 192
GPU_BATCH_CAP = 1024


def auto_batch_size(loaded: LoadedModel, prompt_tokens: int, max_new_tokens: int, cap: int = 0) -> int:
    """Rows per ``generate`` call: a per-device cap, lowered to what the KV cache leaves room for."""
    config = loaded.model.config
    layers = config.num_hidden_layers
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    bytes_per = torch.finfo(loaded.model.dtype).bits // 8 if loaded.model.dtype.is_floating_point else 2
    per_row = 2 * layers * kv_heads * head_dim * (prompt_tokens + max_new_tokens) * bytes_per
    per_row += config.vocab_size * 4 * 3  # logits and processor buffers in fp32
    if loaded.device.device == "cuda":
        free, _total = torch.cuda.mem_get_info()
        budget, default_cap = free * 0.6, GPU_BATCH_CAP
    else:
        import psutil

        budget, default_cap = psutil.virtual_memory().available * 0.3, CPU_BATCH_CAP
    fit = int(budget // max(per_row, 1))
    return max(1, min(cap or default_cap, fit))
