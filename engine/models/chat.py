"""Chat templates, stop and pad tokens, and the tokenizer, for any model family.

Nothing here knows a family by name: the stop tokens are the tokenizer's EOS, the
``generation_config``'s ``eos_token_id`` and the end-of-turn token found by rendering the chat
template; the pad token is chosen so it is never one of those.
"""

from __future__ import annotations

from typing import Any

from engine.errors import UserError

_SENTINEL = "ft-hallu sentinel 7"


def render_chat(tokenizer, messages: list[dict[str, str]], *, add_generation_prompt: bool) -> str:
    """The chat template's text for ``messages``; a system turn the template refuses or drops
    (Gemma's raises, some silently omit it) is put in front of the first user turn instead."""
    if messages and messages[0]["role"] == "system" and not supports_system_role(tokenizer):
        system, rest = messages[0]["content"], [dict(m) for m in messages[1:]]
        if rest and rest[0]["role"] == "user":
            rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
        messages = rest
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def supports_system_role(tokenizer) -> bool:
    """Whether the template renders a system turn (it neither raises nor leaves the content out)."""
    from jinja2.exceptions import TemplateError

    probe = [{"role": "system", "content": _SENTINEL}, {"role": "user", "content": "hi"}]
    try:
        text = tokenizer.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
    except TemplateError:
        return False
    return _SENTINEL in text


def _special_ids(tokenizer) -> set[int]:
    ids = set(tokenizer.all_special_ids)
    ids.update(index for index, token in tokenizer.added_tokens_decoder.items() if token.special)
    return ids


def end_of_turn_token(tokenizer) -> str | None:
    """The token the chat template closes an assistant turn with, found by rendering one turn.

    It is the first special token after the assistant's text: ``<|end|>`` (Phi-3), ``<|im_end|>``
    (ChatML), ``<|eot_id|>`` (Llama 3), ``<end_of_turn>`` (Gemma). None without a chat template.
    """
    if not getattr(tokenizer, "chat_template", None):
        return None
    turn = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": _SENTINEL}]
    try:
        text = tokenizer.apply_chat_template(turn, tokenize=False)
    except Exception:  # a template that cannot render a plain exchange has no usable turn end
        return None
    if _SENTINEL not in text:
        return None
    tail = text[text.rindex(_SENTINEL) + len(_SENTINEL) :]
    special = _special_ids(tokenizer)
    for token_id in tokenizer(tail, add_special_tokens=False)["input_ids"]:
        if token_id in special:
            return tokenizer.convert_ids_to_tokens(token_id)
    return None


def _as_id_list(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    return [int(value)]


def stop_token_ids(tokenizer, generation_config: Any = None) -> list[int]:
    """Every token that ends an answer: the template's end-of-turn token, the tokenizer's EOS and
    the ``generation_config``'s ``eos_token_id`` (one id or a list), in that order, without repeats."""
    ids: list[int] = []
    end_of_turn = end_of_turn_token(tokenizer)
    if end_of_turn is not None:
        ids.append(int(tokenizer.convert_tokens_to_ids(end_of_turn)))
    ids += _as_id_list(tokenizer.eos_token_id)
    ids += _as_id_list(getattr(generation_config, "eos_token_id", None))
    return list(dict.fromkeys(ids))


def choose_pad_token(tokenizer, stop_ids: list[int]) -> str:
    """A pad token that is none of the stop tokens (padding with EOS hides where answers end).

    Kept when the tokenizer's own pad qualifies; else its unk token, a token named like a pad or
    a reserved/unused special token; else any special token that is not a stop token.
    """
    stops = set(stop_ids)

    def usable(token: str | None) -> bool:
        if not token:
            return False
        token_id = tokenizer.convert_tokens_to_ids(token)
        return token_id is not None and token_id not in stops

    if usable(tokenizer.pad_token):
        return tokenizer.pad_token
    if usable(tokenizer.unk_token):
        return tokenizer.unk_token
    specials = [tokenizer.convert_ids_to_tokens(i) for i in sorted(_special_ids(tokenizer))]
    for pattern in ("pad", "reserved", "unused"):
        for token in specials:
            if pattern in token.lower() and usable(token):
                return token
    for token in specials:
        if usable(token):
            return token
    raise UserError("the tokenizer has no token that can pad without being a stop token")


def _generation_config(path: str):
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(path)
    except (OSError, ValueError):
        return None


def load_tokenizer(path: str):
    """The model's tokenizer, left-padded, with a pad token distinct from every stop token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    stops = stop_token_ids(tokenizer, _generation_config(path))
    pad = choose_pad_token(tokenizer, stops)
    if pad != tokenizer.pad_token:
        tokenizer.pad_token = pad
    return tokenizer
