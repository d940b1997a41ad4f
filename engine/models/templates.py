"""The ``chat_template`` setting: a built-in chat format by name, or a Jinja file, for models whose
tokenizer has no template (base models) or whose template should be replaced.

The built-in templates are written here from each format's documented token layout. Each renders
system, user and assistant turns and honours ``add_generation_prompt``; a format without a system
role (Gemma, Mistral) puts the system text in front of the first user turn, as those models'
own templates do. The special tokens a template writes are added to the tokenizer when its
vocabulary lacks them (``apply_chat_template_choice``); the fine-tune then grows the embeddings and
trains those rows, and records all of it in the run record (``chat_template_record``), so a sweep
or ``serve`` with the adapter uses the same template and the same token ids without being told.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.models.folders import RUN_RECORD

# ChatML (Qwen, SmolLM2, ...): <|im_start|>role\n ... <|im_end|>\n
_CHATML = (
    "{%- for message in messages -%}"
    "{%- if message['role'] not in ('system', 'user', 'assistant') -%}"
    "{{- raise_exception('chatml: unknown role ' + message['role']) -}}"
    "{%- endif -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

# Llama 3: BOS, then <|start_header_id|>role<|end_header_id|>\n\n content <|eot_id|> per turn.
_LLAMA3 = (
    "{%- if bos_token -%}{{- bos_token -}}{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] not in ('system', 'user', 'assistant') -%}"
    "{{- raise_exception('llama3: unknown role ' + message['role']) -}}"
    "{%- endif -%}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}"
    "{%- endif -%}"
)

# For templates without a system role: BOS, then each turn in order; a system message is held and
# opens the next user turn's text (``text``), which the template then wraps in its own markers.
_SYSTEM_OPENS_FIRST_USER_TURN = (
    "{%- if bos_token -%}{{- bos_token -}}{%- endif -%}"
    "{%- set pending = namespace(system='') -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}"
    "{%- set pending.system = message['content'] | trim -%}"
    "{%- elif message['role'] == 'user' -%}"
    "{%- set text = message['content'] | trim -%}"
    "{%- if pending.system -%}{%- set text = pending.system + '\\n\\n' + text -%}{%- endif -%}"
    "{%- set pending.system = '' -%}"
)

# Gemma: BOS, <start_of_turn>user|model\n content <end_of_turn>\n; no system role, so the system
# text opens the first user turn.
_GEMMA = (
    _SYSTEM_OPENS_FIRST_USER_TURN
    + "{{- '<start_of_turn>user\\n' + text + '<end_of_turn>\\n' -}}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{- '<start_of_turn>model\\n' + message['content'] | trim + '<end_of_turn>\\n' -}}"
    "{%- else -%}"
    "{{- raise_exception('gemma: unknown role ' + message['role']) -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<start_of_turn>model\\n' -}}{%- endif -%}"
)

# Phi-3: <|system|>, <|user|>, <|assistant|> headers, each turn closed by <|end|>\n.
_PHI3 = (
    "{%- for message in messages -%}"
    "{%- if message['role'] not in ('system', 'user', 'assistant') -%}"
    "{{- raise_exception('phi3: unknown role ' + message['role']) -}}"
    "{%- endif -%}"
    "{{- '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}"
)

# Mistral (v1 instruct layout): BOS [INST] user [/INST] answer EOS [INST] ... ; [INST] is plain
# text in base tokenizers, the answer ends with EOS, and the system text opens the first user
# turn. The prompt already ends with [/INST], so add_generation_prompt adds nothing.
_MISTRAL = (
    _SYSTEM_OPENS_FIRST_USER_TURN
    + "{{- '[INST] ' + text + ' [/INST]' -}}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{- ' ' + message['content'] | trim + eos_token -}}"
    "{%- else -%}"
    "{{- raise_exception('mistral: unknown role ' + message['role']) -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
)


@dataclass(frozen=True)
class BuiltinTemplate:
    """A built-in chat format: its Jinja text, the special tokens it writes, the one ending a turn."""

    name: str
    text: str
    special_tokens: tuple[str, ...]
    end_of_turn: str | None  # None: the tokenizer's EOS ends a turn (Mistral)


BUILTIN_TEMPLATES: dict[str, BuiltinTemplate] = {
    template.name: template
    for template in (
        BuiltinTemplate("chatml", _CHATML, ("<|im_start|>", "<|im_end|>"), "<|im_end|>"),
        BuiltinTemplate("gemma", _GEMMA, ("<start_of_turn>", "<end_of_turn>"), "<end_of_turn>"),
        BuiltinTemplate(
            "llama3", _LLAMA3, ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"), "<|eot_id|>"
        ),
        BuiltinTemplate("mistral", _MISTRAL, (), None),
        BuiltinTemplate("phi3", _PHI3, ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>"), "<|end|>"),
    )
}
CHAT_TEMPLATE_NAMES = tuple(sorted(BUILTIN_TEMPLATES))
DEFAULT_EOS = "</s>"  # added as EOS for a template that ends turns with EOS when the tokenizer has none

# In a template file, `<|name|>` and `<name>` / `</name>` literals are the special tokens it writes.
_TOKEN_LITERAL = re.compile(r"<\|[A-Za-z0-9_.:-]+\|>|</?[A-Za-z_][A-Za-z0-9_]*>")


def choices_text(field: str = "chat_template") -> str:
    """The part of every message that says what the setting accepts."""
    names = ", ".join(CHAT_TEMPLATE_NAMES[:-1]) + " or " + CHAT_TEMPLATE_NAMES[-1]
    return f"set {field} to {names}, or to a Jinja file"


@dataclass(frozen=True)
class ChatTemplate:
    """The template a run uses: where it came from, its text and the special tokens it writes."""

    setting: str  # as the user gave it ("" for the tokenizer's own)
    source: str  # "built-in", "file", "tokenizer" (the model's own) or "adapter" (an adapter's record)
    text: str
    special_tokens: tuple[str, ...] = ()
    recorded_tokens: tuple[tuple[str, int], ...] = ()  # what the adapter's fine-tune added, to check

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def special_tokens_in(text: str) -> tuple[str, ...]:
    """The special-token literals a template file writes, in order of first use."""
    return tuple(dict.fromkeys(_TOKEN_LITERAL.findall(text)))


def _looks_like_path(setting: str) -> bool:
    return "/" in setting or "\\" in setting or setting.startswith("~") or "." in Path(setting).name


def template_setting_from(setting: str, base: str | Path) -> str:
    """A ``chat_template`` that names a file, taken relative to ``base`` (the config file's folder,
    or where a command was typed); a built-in name, or a word that is no path, stays as given."""
    if not setting or setting in BUILTIN_TEMPLATES:
        return setting
    if not _looks_like_path(setting) and not (Path(base) / setting).exists():
        return setting  # a mistyped name: its message then names it, not a made-up path
    path = Path(setting).expanduser()
    return str(path if path.is_absolute() else (Path(base) / path).resolve())


def resolve_chat_template(setting: str, *, field: str = "chat_template") -> ChatTemplate | None:
    """The template ``setting`` names: None for "" (the tokenizer's own), a built-in by name, or a
    Jinja file (read and parsed now, so a bad one is one line naming it before anything loads)."""
    setting = (setting or "").strip()
    if not setting:
        return None
    builtin = BUILTIN_TEMPLATES.get(setting)
    if builtin is not None:
        return ChatTemplate(setting, "built-in", builtin.text, builtin.special_tokens)
    path = Path(setting).expanduser()
    if not path.is_file():
        if path.exists():
            raise UserError(f"{field} {setting}: is a folder, expected a Jinja file")
        what = "no such Jinja file" if _looks_like_path(setting) else "not a built-in template"
        raise UserError(f"{field} {setting!r}: {what}; {choices_text(field)}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the chat template ({exc.strerror})") from None
    if not text.strip():
        raise UserError(f"{path}: the chat template file is empty")
    from jinja2 import Environment, TemplateSyntaxError

    try:
        Environment().parse(text)
    except TemplateSyntaxError as exc:
        raise UserError(f"{path}:{exc.lineno}: not a valid Jinja template: {exc.message}") from None
    return ChatTemplate(str(path.resolve()), "file", text, special_tokens_in(text))


def recorded_chat_template(adapter_dir: str | Path) -> dict[str, Any] | None:
    """The ``chat_template`` entry of an adapter's run record (None for adapters from elsewhere or
    from before the setting existed)."""
    record_file = Path(adapter_dir) / RUN_RECORD
    if not record_file.is_file():
        return None
    try:
        entry = json.loads(record_file.read_text(encoding="utf-8")).get("chat_template")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None
    return entry if isinstance(entry, dict) and isinstance(entry.get("text"), str) else None


def _recorded_name(entry: dict[str, Any]) -> str:
    return repr(entry["setting"]) if entry.get("setting") else "its base tokenizer's own template"


def effective_chat_template(
    setting: str, adapter_dirs: list[str] | tuple[str, ...] = (), *, field: str = "chat_template"
) -> ChatTemplate | None:
    """The template a sweep or ``serve`` uses: ``setting`` if given, else the one the adapter(s)
    were fine-tuned with, else None (the tokenizer's own).

    An explicit setting whose text differs from an adapter's recorded template is refused: the
    adapter learned its turns in that format, and prompts in another one measure something else.
    """
    chosen = resolve_chat_template(setting, field=field)
    recorded = [(folder, entry) for folder in adapter_dirs if (entry := recorded_chat_template(folder))]
    for folder, entry in recorded:
        if chosen is not None and entry.get("sha256") != chosen.sha256:
            raise UserError(
                f"{field} {setting!r} differs from the template adapter {folder} was fine-tuned with "
                f"({_recorded_name(entry)}); leave {field} empty to use the adapter's"
            )
        if entry.get("sha256") != recorded[0][1].get("sha256"):
            raise UserError(
                f"adapters {recorded[0][0]} and {folder} were fine-tuned with different chat templates "
                f"({_recorded_name(recorded[0][1])}, {_recorded_name(entry)}); sweep them separately"
            )
    if not recorded:
        return chosen
    first = recorded[0][1]
    added = tuple((str(item["token"]), int(item["id"])) for item in first.get("tokens_added") or ())
    if chosen is not None:
        return dataclasses.replace(chosen, recorded_tokens=added)
    return ChatTemplate(
        str(first.get("setting") or ""),
        "adapter",
        first["text"],
        tuple(first.get("special_tokens") or ()),
        recorded_tokens=added,
    )


def missing_template_error(model: str, field: str = "chat_template") -> UserError:
    return UserError(f"{model}: its tokenizer has no chat template (a base model?); {choices_text(field)}")


def _uses_eos(text: str) -> bool:
    return "eos_token" in text


def apply_chat_template_choice(tokenizer, chosen: ChatTemplate) -> list[tuple[str, int]]:
    """Give ``tokenizer`` the chosen template; add the special tokens it writes that the vocabulary
    lacks (and an EOS where the template ends turns with one and the tokenizer has none).

    Returns the tokens added with their new ids (the model's embeddings must grow to ``len(tokenizer)``).
    """
    from tokenizers import AddedToken

    vocabulary = tokenizer.get_vocab()
    wanted = [token for token in chosen.special_tokens if token]
    if _uses_eos(chosen.text) and not tokenizer.eos_token:
        wanted.append(DEFAULT_EOS)
    wanted = list(dict.fromkeys(wanted))
    # Tokens already in the vocabulary are (re)declared special, which keeps their ids: the end of a
    # turn is found among special tokens, and decoding skips them.
    tokenizer.add_tokens(
        [AddedToken(token, special=True, normalized=False) for token in wanted], special_tokens=True
    )
    if _uses_eos(chosen.text) and not tokenizer.eos_token:
        tokenizer.eos_token = DEFAULT_EOS
    tokenizer.chat_template = chosen.text
    added = [
        (token, int(tokenizer.convert_tokens_to_ids(token))) for token in wanted if token not in vocabulary
    ]
    if chosen.recorded_tokens and tuple(added) != chosen.recorded_tokens:
        raise UserError(
            f"the adapter's run record added {_show(chosen.recorded_tokens)} to its base's vocabulary, "
            f"this base's tokenizer gives {_show(tuple(added))}: it is not the base the adapter was trained on"
        )
    return added


def _show(tokens: tuple[tuple[str, int], ...]) -> str:
    return ", ".join(f"{token} (id {token_id})" for token, token_id in tokens) or "no tokens"


@dataclass(frozen=True)
class ChatTemplateUse:
    """What a loaded tokenizer's chat template is and what applying it changed (for the run record)."""

    template: ChatTemplate
    end_of_turn: str | None
    tokens_added: tuple[tuple[str, int], ...] = ()
    vocabulary_before: int = 0

    @property
    def explicit(self) -> bool:
        """Set by a setting (or an adapter's record), not the tokenizer's own."""
        return self.template.source != "tokenizer"

    @property
    def identity(self) -> str:
        """What tells samples made with this template apart: a chosen one's digest ("" for the
        tokenizer's own, so stored identities from before the setting stay the same)."""
        return self.template.sha256 if self.explicit else ""

    def record(self) -> dict[str, Any]:
        """The run record's ``chat_template`` entry (what a sweep or ``serve`` reads back)."""
        chosen = self.template
        return {
            "setting": chosen.setting,
            "source": chosen.source,
            "sha256": chosen.sha256,
            "special_tokens": list(chosen.special_tokens),
            "end_of_turn": self.end_of_turn,
            "tokens_added": [{"token": token, "id": token_id} for token, token_id in self.tokens_added],
            "vocabulary": {
                "before": self.vocabulary_before,
                "after": self.vocabulary_before + len(self.tokens_added),
            },
            "text": chosen.text,
        }
