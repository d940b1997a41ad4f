"""A quiet console: ft-hallu's own lines by default; library chatter only when asked for.

Libraries print three kinds of noise on their own: Python warnings (FutureWarning and friends with
their ``warnings.warn(`` source line), progress bars (tqdm, used by transformers' "Loading weights",
trl's "Truncating/Dropping … examples", datasets, the GGUF converter) and log records (hub notices
such as kernels' "Skipping publisher trust check"). ``configure(verbose=False)`` turns all three
off for this process and, through environment variables, for every process it starts (local jobs,
the detached sweep of the TUI); ``configure(verbose=True)`` leaves them alone.

It must run before the libraries are imported: tqdm reads ``TQDM_*`` variables when it is first
imported. ft-hallu imports torch, transformers, trl and friends lazily, so the CLI's entry point
calls it before any of them loads.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

VERBOSE_ENV = "FT_HALLU_VERBOSE"  # =1: library warnings, bars and notices are shown

# Read by the libraries themselves (and inherited by child processes).
QUIET_ENVIRONMENT = {
    "TQDM_DISABLE": "1",  # every tqdm bar, whoever creates it
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # transformers / huggingface_hub bars
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "DATASETS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "PYTHONWARNINGS": "ignore",  # child Python processes start with warnings off
    "TOKENIZERS_PARALLELISM": "false",  # the tokenizers fork warning
}

# Loggers of libraries that log notices at INFO/WARNING level on their own.
LIBRARY_LOGGERS = (
    "transformers",
    "datasets",
    "huggingface_hub",
    "trl",
    "peft",
    "accelerate",
    "kernels",
    "torch",
    "httpx",
    "httpcore",
    "urllib3",
    "gradio",
    "sentence_transformers",
    "bitsandbytes",
    "filelock",
)


def is_verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


def configure(verbose: bool | None = None) -> None:
    """Set the console for this process and its children; ``None`` keeps what $FT_HALLU_VERBOSE says."""
    if verbose is None:
        verbose = is_verbose()
    if verbose:
        os.environ[VERBOSE_ENV] = "1"
        return
    os.environ.pop(VERBOSE_ENV, None)
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    silence_loaded_libraries()


def silence_loaded_libraries() -> None:
    """Quiet warnings and library loggers now (also for libraries imported before ``configure``)."""
    if is_verbose():
        return
    warnings.filterwarnings("ignore")
    logging.captureWarnings(True)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    if "transformers" in sys.modules:  # imported already: its own switches, not only the env
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    if "datasets" in sys.modules:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
