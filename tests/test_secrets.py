"""The job environment filter: secrets are dropped by name and by value, everything else kept."""

from engine.jobs import job_environment
from engine.secrets import filter_environment, looks_secret_name, looks_secret_value, redact

GHP = "ghp_" + "A1b2" * 9
HF = "hf_" + "x9Y8" * 9


def test_the_issue_examples_are_dropped_and_ordinary_variables_kept():
    base = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": "/src",
        "HOME": "/home/me",
        "TOKENIZERS_PARALLELISM": "false",
        "FT_HALLU_HOME": "/data",
        "OPENAI_KEY": "not-even-a-key-format",
        "GITHUB_PAT": "x",
        "DATABASE_URL": "postgres://user:password@db.example.org/app",
        "PIP_INDEX_URL": "https://me:hunter2@pypi.example.org/simple",
        "SOME_SETTING": "sk-live-" + "7" * 24,
        "CI_NOTE": f"using {GHP} for now",
        "MODEL_CACHE_HINT": HF,
        "PLAIN_URL": "https://example.org:8443/path?q=a:b",
    }
    env = job_environment(base, keep=())
    assert env == {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": "/src",
        "HOME": "/home/me",
        "TOKENIZERS_PARALLELISM": "false",
        "FT_HALLU_HOME": "/data",
        "PLAIN_URL": "https://example.org:8443/path?q=a:b",
    }


def test_keep_env_passes_a_variable_even_with_a_token_value():
    assert filter_environment({"HF_TOKEN": HF, "OTHER": HF}, keep=("HF_TOKEN",)) == {"HF_TOKEN": HF}


def test_name_and_value_rules_one_by_one():
    for name in ("AWS_SECRET_ACCESS_KEY", "MY_API_KEY", "APIKEY", "GH_TOKEN", "SLACKTOKEN", "DB_PASSWD", "X_DSN"):
        assert looks_secret_name(name), name
    for name in ("PATH", "LD_LIBRARY_PATH", "PWD", "KEYBOARD_LAYOUT", "TOKENIZERS_PARALLELISM", "SLURM_CONF"):
        assert not looks_secret_name(name), name
    for value in ("AKIAABCDEFGHIJKLMNOP", "glpat-" + "a" * 20, "-----BEGIN RSA PRIVATE KEY-----", "mysql://u:p@h/d"):
        assert looks_secret_value(value), value
    for value in ("sk-short", "https://user@host/x", "/scratch/hf_cache", "http://127.0.0.1:8000/v1"):
        assert not looks_secret_value(value), value


def test_redact_hides_tokens_inside_text():
    assert redact(f"push with {GHP} done") == "push with *** done"
