"""Settings: unknown keys and wrong types are named, ints pass where floats are expected, checks
name the key; the config schema's allowed values are the library's, and config.yaml documents
every setting with its default."""

import ast
import importlib
import inspect
import io
import re
import tokenize

import pytest
import yaml

from debatch import settings
from debatch.settings import (
    Block,
    at_least,
    check_choice,
)

from conftest import REPO

BLOCK = Block(
    "crops",
    {"size": 32, "scale": 1.0, "augment": True, "name": "x", "cap": None, "limit": 10},
    nullable=("limit",),
    checks=[at_least(1, "size")],
)


def test_defaults_fill_missing_keys_and_ints_are_valid_floats():
    assert BLOCK.merge({"scale": 2}) == {**BLOCK.defaults, "scale": 2}


@pytest.mark.parametrize(
    "params, message",
    [
        ({"sizes": 3}, r"unknown crops parameter\(s\) \['sizes'\]"),
        ({"size": "32"}, "crops.size must be of type int, not '32'"),
        ({"size": 3.5}, "crops.size must be of type int"),
        ({"augment": 1}, "crops.augment must be of type bool"),
        ({"scale": True}, "crops.scale must be of type float"),
        ({"name": None}, "crops.name must be of type str"),
        ({"size": 0}, "crops.size must be >= 1, not 0"),
    ],
)
def test_bad_values_are_named(params, message):
    with pytest.raises(ValueError, match=message):
        BLOCK.merge(params)


def test_none_accepted_where_it_means_off():
    assert BLOCK.merge({"cap": 5})["cap"] == 5
    assert BLOCK.merge({"limit": None})["limit"] is None


def test_nested_blocks_are_merged_and_named():
    merged = settings.TRAIN.merge({"abra": {"bound": 4.0}})
    assert merged["abra"]["bound"] == 4.0 and merged["abra"]["steps"] == 1
    with pytest.raises(ValueError, match=r"unknown train.abra parameter\(s\) \['stepz'\]"):
        settings.TRAIN.merge({"abra": {"stepz": 1}})
    with pytest.raises(ValueError, match=r"unknown demo.params.batch parameter\(s\) \['gian'\]"):
        settings.DEMO.merge({"batch": {"gian": 0.1}})
    with pytest.raises(ValueError, match="train.abra must be a block of settings"):
        settings.TRAIN.merge({"abra": 3})


def test_check_choice_names_the_key_and_the_choices():
    with pytest.raises(
        ValueError,
        match=r"segment.method must be one of \['propagate', 'cellpose'\], "
        r"not 'stardist'",
    ):
        check_choice("segment.method", "stardist", settings.SEGMENT_METHODS)


def schema_enums(node, path=""):
    """{dotted key: enum} of every enum in a JSON schema (array items under the key's name)."""
    found = {}
    if isinstance(node, dict):
        if "enum" in node:
            found[path] = node["enum"]
        for key, child in node.get("properties", {}).items():
            found.update(schema_enums(child, f"{path}.{key}".lstrip(".")))
        if "items" in node:
            found.update(schema_enums(node["items"], path))
        if isinstance(node.get("additionalProperties"), dict):  # a block per name: external.*
            found.update(schema_enums(node["additionalProperties"], f"{path}.*"))
    return found


def test_schema_enums_are_the_settings_allowed_values():
    """The schemas validate what the library allows: neither may drift from the other."""
    config = schema_enums(
        yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    )
    assert config == {
        "segment.method": list(settings.SEGMENT_METHODS),
        "crops.unit": list(settings.CROP_UNITS),
        "features.measurements": list(settings.MEASUREMENTS),
        "embed.device": list(settings.DEVICES),
        "train.splits": list(settings.SPLIT_SOURCES),
        "profiles.corrections": list(settings.CORRECTIONS),
        "external.*.level": list(settings.LEVELS),
        "external.*.features": list(settings.FEATURE_KINDS),
    }
    platemap = schema_enums(
        yaml.safe_load((REPO / "workflow/schemas/platemap.schema.yaml").read_text())
    )
    assert platemap == {"role": list(settings.ROLES)}
    sheet = yaml.safe_load((REPO / "workflow/schemas/plates.schema.yaml").read_text())
    assert tuple(sheet["required"]) == settings.PLATE_SHEET_COLUMNS
    optional = settings.PLATE_SHEET_OPTIONAL
    assert tuple(sheet["properties"]) == settings.PLATE_SHEET_COLUMNS + optional
    assert sheet["properties"]["split"]["enum"] == list(settings.SPLITS)


def flatten(block: dict, prefix=""):
    out = {}
    for key, value in block.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


# {method} and {seed} wildcards (with train.recipes.{method}), threads.train
SET_BY_THE_WORKFLOW = {"train.method", "train.recipe", "train.seed", "train.num_threads"}


def config_section(config: dict, block: settings.Block) -> dict:
    """The part of config.yaml a block reads (``demo.params.batch`` -> config's that block)."""
    for part in block.name.split("."):
        config = config[part]
    return config


def test_default_config_sets_every_setting_to_its_library_default():
    """config/config.yaml documents every key; where it differs from the library default the
    demo needs it (train.methods/epochs/holdout, profiles.corrections, demo.params) or it is
    listed here, so a changed default is a decision, not an accident."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    demo_overrides = {
        "train.epochs": 10,
        "train.lr_schedule_epochs": 10,
        "train.holdout_batches": ["batch4"],
        "train.width": 16,  # the demo's network and screen are small so `make demo` is quick
        "demo.params.sites": 1,
        "profiles.corrections": ["none", "sphering", "harmony"],
        "report.title": "debatch demo screen",
    }
    for block in settings.STAGES:
        section = config_section(config, block)
        written = {k: v for k, v in section.items() if k not in settings.TRAIN_FAN_OUT}
        written = flatten(written, f"{block.name}.")
        defaults = flatten(block.defaults, f"{block.name}.")
        assert set(written) == set(defaults) - SET_BY_THE_WORKFLOW, block.name
        for key, value in written.items():
            assert value == demo_overrides.get(key, defaults[key]), key


def commented_keys(text: str) -> set[str]:
    """Dotted keys of a YAML file with a trailing comment on their line or on the lines their
    value continues on (a flow list over two lines)."""
    found, path, current = set(), [], None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            current = None if not stripped else current
            continue
        key = re.match(r"(\s*)([A-Za-z_]\w*):", line)
        if key:
            depth = len(key.group(1)) // 2
            path = [*path[:depth], key.group(2)]
            current = ".".join(path)
        if current and " #" in line:
            found.add(current)
    return found


def block_keys(block: settings.Block, prefix: str) -> set[str]:
    keys = set()
    for key in block.defaults:
        keys.add(f"{prefix}{key}")
        if key in block.children:
            keys |= block_keys(block.children[key], f"{prefix}{key}.")
    return keys


def test_config_yaml_comments_every_setting():
    """Each key's meaning is written once, beside it in config/config.yaml (train.recipes only
    shows a recipe, its keys are those of the presets above it)."""
    commented = commented_keys((REPO / "config" / "config.yaml").read_text())
    keys = set().union(*(block_keys(block, f"{block.name}.") for block in settings.STAGES))
    assert sorted(keys - SET_BY_THE_WORKFLOW - commented) == []


def test_rotation_is_a_commented_train_key_off_by_default_as_in_the_schema():
    """rotate_holdout, like methods and seeds, shapes which jobs run, not a job
    (settings.TRAIN_FAN_OUT): it lives in the schema, not a Block; config.yaml comments it and
    leaves rotation off, as the schema's default."""
    config = (REPO / "config" / "config.yaml").read_text()
    assert "train.rotate_holdout" in commented_keys(config)
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    train = schema["properties"]["train"]["properties"]
    assert set(settings.TRAIN_FAN_OUT) <= set(train)
    rotate = train["rotate_holdout"]["default"]
    assert yaml.safe_load(config)["train"]["rotate_holdout"] is rotate is False


def block_default_lines(tree: ast.Module) -> set[int]:
    """Lines of every Block's defaults dict, and of the module dicts spread into one."""
    lines, spread = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Block":
            defaults = node.args[1]
            lines |= set(range(defaults.lineno, defaults.end_lineno + 1))
            if isinstance(defaults, ast.Dict):
                spread |= {v.id for k, v in zip(defaults.keys, defaults.values) if k is None}
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) in spread:
            lines |= set(range(node.lineno, node.end_lineno + 1))
    return lines


def test_no_block_repeats_the_config_comments():
    """A comment beside a default would be a second copy of config.yaml's, free to drift."""
    commented = []
    for path in (REPO / "src" / "debatch" / "settings").glob("*.py"):
        text = path.read_text()
        lines = block_default_lines(ast.parse(text))
        tokens = tokenize.generate_tokens(io.StringIO(text).readline)
        commented += [
            f"{path.name}:{t.start[0]}"
            for t in tokens
            if t.type == tokenize.COMMENT and t.start[0] in lines
        ]
    assert commented == []


def test_the_package_exports_every_public_name_of_its_modules():
    for part in ("names", "block", "images", "training", "analysis", "synthetic"):
        module = importlib.import_module(f"debatch.settings.{part}")
        public = {
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and getattr(value, "__module__", module.__name__) == module.__name__
            and not inspect.ismodule(value)
        }
        assert public <= set(settings.__all__), module.__name__
    assert all(hasattr(settings, name) for name in settings.__all__)


def test_config_yaml_shows_every_key_of_an_external_source_commented_with_its_default():
    """`external:` is {} (no source), so its keys are documented by a commented example above
    it: the example, uncommented, is a valid block with every key, commented, at its default."""
    lines = (REPO / "config" / "config.yaml").read_text().splitlines()
    start, end = lines.index("#   external:"), lines.index("external: {}")
    example = "\n".join(line[4:] for line in lines[start:end] if line.startswith("#   "))
    (name, block), *others = yaml.safe_load(example)["external"].items()
    defaults = settings.external_block(name).merge({"path": block["path"]})
    assert not others and block == defaults
    assert commented_keys(example) >= {f"external.{name}.{key}" for key in defaults}
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    properties = schema["properties"]["external"]["additionalProperties"]["properties"]
    assert {k: v["default"] for k, v in properties.items() if k != "path"} == {
        k: v for k, v in defaults.items() if k != "path"
    }
