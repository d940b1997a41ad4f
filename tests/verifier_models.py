"""Tiny random sequence classifiers built offline, for the verifier tests: a BERT with a WordPiece
tokenizer (MNLI-style, three labels) and a RoBERTa with a byte-level BPE tokenizer (binary)."""

from __future__ import annotations

import sys
from pathlib import Path

from claims_sweep import ANSWERS, SOURCES

# Weights this large make a random classifier's output depend on its input (at BERT's 0.02 the
# class probabilities are the same for every pair to three decimals).
INIT = 0.5

# Words the tokenizers know: the test sweep's sources and answers, plus a few common ones.
CORPUS = [*SOURCES, *(text for texts in ANSWERS.values() for text in texts)] + [
    "The company designs robots for warehouses.",
    "It is a listed company with thousands of employees.",
]


def build_bert_classifier(folder: Path, id2label: dict[int, str], *, seed: int = 11) -> Path:
    """A 2-layer BERT sequence classifier with a WordPiece vocabulary of the corpus's words."""
    import torch
    from tokenizers import BertWordPieceTokenizer
    from tokenizers.processors import BertProcessing
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    wordpiece.train_from_iterator(CORPUS, vocab_size=400, min_frequency=1, special_tokens=specials)
    # [CLS] A [SEP] B [SEP], as BERT pairs read
    wordpiece._tokenizer.post_processor = BertProcessing(
        ("[SEP]", wordpiece.token_to_id("[SEP]")), ("[CLS]", wordpiece.token_to_id("[CLS]"))
    )
    tokenizer = BertTokenizerFast(
        tokenizer_object=wordpiece._tokenizer,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
    )
    tokenizer.model_max_length = 128
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        initializer_range=INIT,
        num_labels=len(id2label),
        id2label=dict(id2label),
        label2id={name: index for index, name in id2label.items()},
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_roberta_classifier(folder: Path, id2label: dict[int, str], *, seed: int = 12) -> Path:
    """A 2-layer RoBERTa sequence classifier with a byte-level BPE tokenizer trained on the corpus."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing
    from transformers import RobertaConfig, RobertaForSequenceClassification, RobertaTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe.train_from_iterator(CORPUS, vocab_size=400, min_frequency=1, special_tokens=specials)
    # <s> A </s></s> B </s>, as RoBERTa pairs read
    bpe._tokenizer.post_processor = RobertaProcessing(
        ("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>"))
    )
    tokenizer = RobertaTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
    )
    tokenizer.model_max_length = 128
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=130,  # RoBERTa offsets positions by the pad id + 1
        initializer_range=INIT,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        num_labels=len(id2label),
        id2label=dict(id2label),
        label2id={name: index for index, name in id2label.items()},
    )
    torch.manual_seed(seed)
    model = RobertaForSequenceClassification(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# A model folder with its own code and HHEM-2.1-open's interface: predict(pairs) -> the probability
# that each hypothesis is consistent with its premise (here: the share of its words in the premise).
PREDICT_MODEL_SOURCE = """
import re

import torch
from transformers import PretrainedConfig, PreTrainedModel


class OverlapConfig(PretrainedConfig):
    model_type = "word-overlap"


class OverlapScorer(PreTrainedModel):
    config_class = OverlapConfig

    def __init__(self, config):
        super().__init__(config)
        self.scale = torch.nn.Parameter(torch.ones(1))
        self.post_init()

    def _init_weights(self, module):
        pass

    def predict(self, pairs):
        scores = []
        for premise, hypothesis in pairs:
            have = set(re.findall(r"[a-z0-9]+", premise.lower()))
            words = re.findall(r"[a-z0-9]+", hypothesis.lower())
            scores.append(sum(w in have for w in words) / max(1, len(words)))
        return torch.tensor(scores) * self.scale.detach()
"""


def build_predict_model(folder: Path) -> Path:
    """Save a custom-code model (config auto_map + modeling_overlap.py) that only loads with
    trust_remote_code and scores through ``predict``."""
    import importlib.util

    source_dir = folder.parent / f"{folder.name}-source"
    source_dir.mkdir(parents=True, exist_ok=True)
    source = source_dir / "modeling_overlap.py"
    source.write_text(PREDICT_MODEL_SOURCE)
    spec = importlib.util.spec_from_file_location("modeling_overlap", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["modeling_overlap"] = module  # save_pretrained copies the module's file by its name
    try:
        spec.loader.exec_module(module)
        module.OverlapConfig.register_for_auto_class()
        module.OverlapScorer.register_for_auto_class("AutoModelForSequenceClassification")
        module.OverlapScorer(module.OverlapConfig()).save_pretrained(folder)
    finally:
        del sys.modules["modeling_overlap"]
    return folder
