import os
import subprocess
import sys

import pytest

from store import core, open_db


@pytest.mark.slow
def test_demo_runs_offline_end_to_end(tmp_path):
    env = {**os.environ, "FT_HALLU_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "cli", "demo", "--samples", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    db_path = tmp_path / "home" / "ft-hallu.db"
    assert f"stored in {db_path}" in done.stdout
    assert "[3/4] sweep" in done.stderr and "eval loss" in done.stderr  # progress is visible
    store = open_db(db_path)
    [sweep] = core.list_sweeps(store)
    # 36 cells x 1 sample x (entity prompt + 2 held-out questions) x (base + fine-tuned)
    assert sweep["generation_count"] == 36 * 3 * 2 and sweep["status"] == "completed"
    assert core.list_finetune_runs(store)[0]["status"] == "completed"
    header = next(line for line in done.stdout.splitlines() if "variant" in line)
    assert "temperature" in header and "top_k" in header
