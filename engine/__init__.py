"""ft-hallu engine: one module per workflow step. Front ends (CLI, TUI, Gradio) call these."""

import logging as _logging

# bitsandbytes logs a warning about optional CPU kernels on every import (peft and trl import it);
# it is harmless and would bury real messages, so keep it to errors.
_logging.getLogger("bitsandbytes").setLevel(_logging.ERROR)
