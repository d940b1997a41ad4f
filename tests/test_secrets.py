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


def test_redact_url_hides_user_information_and_credential_query_values():
    from engine.secrets import redact_url

    cases = {
        "http://user:PASS@host/v1": "http://***@host/v1",
        "http://user:PASS@host:8000/v1?key=abc&x=1": "http://***@host:8000/v1?key=***&x=1",
        "https://h/x?sig=zz&token=t&api-key=q&access_token=a&signature=s&password=p": (
            "https://h/x?sig=***&token=***&api-key=***&access_token=***&signature=***&password=***"
        ),
        "redis://:pa/ss@cache:6379/0": "redis://***@cache:6379/0",  # a '/' inside the password
        "https://h/callback#access_token=abc": "https://h/callback#***",
        "http://token-as-user@h/": "http://***@h/",
        # Nothing secret: left exactly as given.
        "http://127.0.0.1:8000/v1": "http://127.0.0.1:8000/v1",
        "https://registry.example.org:443/@scope/pkg": "https://registry.example.org:443/@scope/pkg",
        "https://example.org:8443/path?q=a:b": "https://example.org:8443/path?q=a:b",
    }
    for url, expected in cases.items():
        assert redact_url(url) == expected, url


def test_redact_applies_to_every_url_inside_a_message():
    line = "connection to http://me:PASS@h/v1 failed; retry at https://h/x?key=K1 with " + GHP
    assert redact(line) == "connection to http://***@h/v1 failed; retry at https://h/x?key=*** with ***"
