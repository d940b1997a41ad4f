"""The typed settings loader: every field checked against its annotation and declared range."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from engine.configfile import (
    check_field,
    load_dataclass,
    read_toml,
    setting,
    show,
    to_toml,
    validate_instance,
)
from engine.errors import UserError


@dataclass
class Inner:
    values: list[float] = setting(factory=lambda: [1.0], gt=0, max=2, min_items=1)


@dataclass
class Outer:
    name: str = setting("x", non_empty=True)
    count: int = setting(1, min=1)
    ratio: float = setting(0.5, min=0, lt=1)
    flag: bool = False
    modules: str | list[str] = "all"
    limit: int | None = setting(None, min=1)
    names: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    kind: str = setting("a", choices=("a", "b"))
    path: str = setting("", required=True)
    inner: Inner = field(default_factory=Inner)


BAD = [
    ({"count": 1.5}, "count = 1.5: must be a whole number"),
    ({"count": True}, "count = true: must be a whole number"),
    ({"count": 0}, "count = 0: must be >= 1"),
    ({"ratio": float("nan")}, "ratio = nan: must be a finite number"),
    ({"ratio": float("-inf")}, "ratio = -inf: must be a finite number"),
    ({"ratio": False}, "ratio = false: must be a number"),
    ({"ratio": 1}, "ratio = 1: must be >= 0 and < 1"),
    ({"ratio": "0.5"}, 'ratio = "0.5": must be a number'),
    ({"name": 3}, "name = 3: must be a string"),
    ({"name": "  "}, 'name = "  ": must not be empty'),
    ({"flag": "yes"}, 'flag = "yes": must be true or false'),
    ({"modules": 4}, "modules = 4: must be a string or a list of strings"),
    ({"limit": 0}, "limit = 0: must be >= 1"),
    ({"names": "one"}, 'names = "one": must be a list of strings in [ ], not a single value'),
    ({"names": ["a", 2]}, "names[1] = 2: must be a string"),
    ({"labels": ["a"]}, 'labels = ["a"]: must be a table'),
    ({"labels": {"a": 1}}, "labels.a = 1: must be a string"),
    ({"kind": "c"}, 'kind = "c": must be one of a, b'),
    ({"inner": "big"}, 'inner = "big": must be a table'),
    ({"inner": {"values": 1.0}}, "inner.values = 1.0: must be a list of numbers"),
    ({"inner": {"values": []}}, "inner.values = []: must hold at least 1 value(s)"),
    ({"inner": {"values": [1.0, 3.0]}}, "inner.values[1] = 3.0: must be > 0 and <= 2"),
    ({"inner": {"valuez": [1.0]}}, "unknown field 'inner.valuez'; did you mean 'inner.values'?"),
    ({"cont": 2}, "unknown field 'cont'; did you mean 'count'?"),
    ({"value": [1.0]}, "unknown field 'value'; did you mean 'inner.values'?"),
    ({"zzz": 1}, "unknown field 'zzz' (known: count, flag,"),
]


@pytest.mark.parametrize(("values", "message"), BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_bad_values_name_source_field_and_value(values, message):
    with pytest.raises(UserError) as caught:
        load_dataclass(Outer, {"path": "p", **values}, source="my.toml")
    text = str(caught.value)
    assert text.startswith("my.toml: ") and message in text
    assert "\n" not in text


def test_good_values_are_converted():
    loaded = load_dataclass(
        Outer,
        {"path": "p", "ratio": 0, "names": ["a"], "modules": ["q", "v"], "inner": {"values": [1, 2]}},
        source="s",
    )
    assert loaded.ratio == 0.0 and isinstance(loaded.ratio, float)
    assert loaded.names == ("a",)
    assert loaded.modules == ["q", "v"]
    assert loaded.inner.values == [1.0, 2.0]


def test_required_field_and_labels_for_command_line_options():
    with pytest.raises(UserError, match="my.toml: path: required"):
        load_dataclass(Outer, {}, source="my.toml")
    with pytest.raises(UserError, match=r"command line: --count = -1: must be >= 1"):
        check_field(Outer, "count", -1, source="command line", label="--count")


def test_validate_instance_checks_configs_built_in_code():
    with pytest.raises(UserError, match=r"form: inner.values\[0\] = nan: must be a finite number"):
        validate_instance(Outer(path="p", inner=Inner([float("nan")])), source="form")


def test_read_toml_errors_are_one_line(tmp_path):
    folder = tmp_path / "dir.toml"
    folder.mkdir()
    with pytest.raises(UserError, match="is a folder"):
        read_toml(folder)
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(UserError, match="not UTF-8"):
        read_toml(latin)
    table = tmp_path / "t.toml"
    table.write_text('sweep = "big"\n')
    with pytest.raises(UserError, match=r'sweep = "big": must be a table'):
        read_toml(table, table="sweep")


def test_show_writes_values_as_toml():
    assert show(float("nan")) == "nan"
    assert show(True) == "true"
    assert show(["a", 1.5]) == '["a", 1.5]'
    assert show("x" * 100).endswith("...")


def test_the_three_real_configs_refuse_nan(tmp_path):
    from engine.finetune import config_from_dict
    from engine.jobs import load_cluster_settings
    from engine.sweep import sweep_config_from_dict

    with pytest.raises(UserError, match=r"sweep.toml: grid.temperatures\[0\] = nan: must be a finite number"):
        sweep_config_from_dict({"grid": {"temperatures": [float("nan")]}}, where="sweep.toml")
    with pytest.raises(UserError, match=r"ft.toml: learning_rate = nan: must be a finite number"):
        config_from_dict({"dataset": "d", "learning_rate": float("nan")}, where="ft.toml")
    cluster = tmp_path / "cluster.toml"
    cluster.write_text("gpus = nan\n")
    with pytest.raises(UserError, match=r"cluster.toml: gpus = nan: must be a whole number"):
        load_cluster_settings(cluster)


def test_lr_scheduler_choices_follow_transformers():
    from transformers.trainer_utils import SchedulerType

    from engine.finetune import LR_SCHEDULERS

    assert set(LR_SCHEDULERS) == {item.value for item in SchedulerType}


def test_one_toml_writer_round_trips_sweep_finetune_and_cluster_configs(tmp_path):
    """configfile.to_toml is the one writer: each config read back from its output is the same config,
    hostile strings (quotes, backslashes, newlines, DEL, non-ASCII) and nested tables included."""
    from engine.finetune import FinetuneConfig, load_config
    from engine.jobs import ClusterSettings, load_cluster_settings
    from engine.sweep import Grid, SweepConfig, load_sweep_config

    awkward = 'a "quoted" \\ back\nslash\ttab \x7f del, ZYTRELL Größe 株式会社 😀'
    sweep = SweepConfig(
        name="round trip",
        entity_name="ZYTRELL",
        prompt_template=awkward + " {name}",
        adapters={"r16": "/runs/a b", "lr1.5": "/runs/x"},  # a dotted label must be quoted
        samples_per_cell=3,
        grid=Grid([0.5, 1.25], [0.9], [0, 40]),
    )
    path = tmp_path / "sweep.toml"
    path.write_text(to_toml("sweep", sweep), encoding="utf-8")
    assert load_sweep_config(path) == sweep
    finetune = FinetuneConfig(name="ft", dataset="/d/qa.jsonl", target_modules=["q_proj", "v_proj"], epochs=0.5)
    path = tmp_path / "ft.toml"
    path.write_text(to_toml("finetune", finetune), encoding="utf-8")
    assert load_config(path) == finetune
    # A top-level table is not what the cluster file uses, but None fields are left out either way.
    cluster = ClusterSettings(partition="gpu", gpus=2, setup=("module load cuda",), time=None)
    text = to_toml("cluster", cluster)
    assert "time" not in text and "partition = \"gpu\"" in text
    path = tmp_path / "cluster.toml"
    path.write_text(text.split("\n", 1)[1], encoding="utf-8")  # the file's keys sit at the top level
    assert load_cluster_settings(path) == cluster


def test_launched_configs_go_under_the_data_folder(tmp_path, monkeypatch):
    from engine.configfile import launched_config_path, write_launched_config
    from engine.sweep import SweepConfig, load_sweep_config

    monkeypatch.setenv("FT_HALLU_HOME", str(tmp_path))
    assert launched_config_path("finetune", "my run") == tmp_path / "configs" / "my-run.toml"
    # A sweep and a fine-tune of the same name keep separate files.
    assert launched_config_path("sweep", "my run") == tmp_path / "configs" / "sweep-my-run.toml"
    written = write_launched_config("sweep", SweepConfig(name="my run"))
    assert written == tmp_path / "configs" / "sweep-my-run.toml"
    assert load_sweep_config(written) == SweepConfig(name="my run")


def test_describe_setting_gives_the_help_with_choices_and_range() -> None:
    from engine.configfile import describe_setting
    from engine.finetune import FinetuneConfig
    from engine.sweep import SweepConfig

    assert describe_setting(FinetuneConfig, "lora_r") == "LoRA rank (>= 1)"
    assert describe_setting(FinetuneConfig, "mode").endswith("(one of lora, qlora, full)")
    assert describe_setting(SweepConfig, "grid.top_ps") == "nucleus (top-p) values, separated by commas (> 0 and <= 1)"
    with pytest.raises(KeyError):
        describe_setting(FinetuneConfig, "no_such_field")
    # Every fine-tune and sweep setting a form shows has help (one source: the dataclass field).
    import dataclasses

    for cls in (FinetuneConfig, SweepConfig):
        for item in dataclasses.fields(cls):
            if item.name != "grid":
                assert item.metadata.get("help"), (cls.__name__, item.name)
