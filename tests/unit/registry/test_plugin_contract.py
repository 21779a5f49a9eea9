"""The plugin contract holds for every registered plugin, and the other way round: each plugin of a
kind chosen by a config group has its conf/<kind>/<name>.yaml and every such YAML a plugin; each is
listed in its README row; each is exercised by some test. `register` refuses a class that does not
derive from its kind's base."""

import glob
import os
import re
from pathlib import Path

import pytest
from repo_paths import ROOT

from allmos.config import EngineConfig
from allmos.registry import KINDS, PluginOptions, base_of, lookup, names, register

GROUP_KINDS = [kind for kind, k in KINDS.items() if k.chosen_by == "group"]
SWITCH_KINDS = [kind for kind, k in KINDS.items() if k.chosen_by not in ("group", "architecture")]


def readme_row(switch: str) -> str:
    text = Path(ROOT, "README.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith(f"| `{switch}` |")]
    assert len(rows) == 1, f"README needs one row for `{switch}` in its switch table"
    return rows[0]


def row_values(switch: str) -> set[str]:
    return set(re.findall(r"`([^`]+)`", readme_row(switch).split("|")[2]))


def source_of_tests() -> str:
    here = os.path.abspath(__file__)
    pattern = os.path.join(ROOT, "tests", "**", "*.py")
    files = [f for f in glob.glob(pattern, recursive=True) if os.path.abspath(f) != here]
    return "\n".join(Path(f).read_text() for f in files)


def exercised(kind: str, name: str, source: str) -> bool:
    """A test builds the class itself, or asks for the plugin: by its config group (`kind=name`), by
    setting the switch that picks it (`cuda_graphs=...`), or, for a model, by its family's tiny model."""
    cls = lookup(kind, name).cls.__name__
    forms = [rf"\b{cls}\b", rf"\b{kind}={name}\b", rf"\b{kind}=\"{name}\"", rf"\"{kind}\": \"{name}\""]
    if kind in SWITCH_KINDS:
        forms.append(rf"\b{KINDS[kind].chosen_by}=")
    if kind == "model":
        forms.append(rf"\"{name.removesuffix('ForCausalLM').lower()}\"")
    return any(re.search(form, source) for form in forms)


@pytest.mark.parametrize("kind", GROUP_KINDS)
def test_each_plugin_of_a_config_group_has_its_yaml_and_each_yaml_a_plugin(kind):
    yamls = {os.path.basename(p)[:-5] for p in glob.glob(os.path.join(ROOT, "conf", kind, "*.yaml"))}
    assert yamls == set(names(kind))


@pytest.mark.parametrize("kind", GROUP_KINDS)
def test_each_plugin_of_a_config_group_is_in_its_readme_row_and_only_those(kind):
    assert row_values(kind) == set(names(kind))


@pytest.mark.parametrize("kind", SWITCH_KINDS)
def test_the_switch_of_a_kind_picks_every_plugin_of_it_and_has_its_readme_row(kind):
    switch = KINDS[kind].chosen_by
    values = SWITCH_VALUES.get(switch, (False, True))
    picked = {EngineConfig(**{switch: value}).plugin_choices()[kind].name for value in values}
    assert picked == set(names(kind))
    assert row_values(switch) == {str(value).lower() for value in values}


SWITCH_VALUES = {"cuda_graphs": (False, True, "forward")}  # a switch beyond on/off: every value it takes


def test_each_model_architecture_is_named_in_the_readme():
    text = Path(ROOT, "README.md").read_text()
    for architecture in names("model"):
        assert architecture.removesuffix("ForCausalLM") in text


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_plugin_is_exercised_by_a_test(kind):
    source = source_of_tests()
    missing = [name for name in names(kind) if not exercised(kind, name, source)]
    assert not missing, f"no test builds or selects {kind} plugin(s) {missing}"


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_registered_plugin_derives_from_its_kinds_base(kind):
    base = base_of(kind)
    for name in names(kind):
        assert issubclass(lookup(kind, name).cls, base)


def test_register_refuses_a_class_that_is_not_of_its_kind():
    class NotABackend:
        pass

    with pytest.raises(TypeError, match="must derive from AttentionBackend"):
        register("attention", "not_a_backend")(NotABackend)
    with pytest.raises(TypeError, match="must derive from PluginOptions"):
        register("kv_store", "odd", options=dict)(lookup("kv_store", "torch").cls)
    with pytest.raises(ValueError, match="unknown plugin kind"):
        register("attentions", "x")


def test_plugin_options_base_is_shared():
    for kind in GROUP_KINDS:
        for name in names(kind):
            assert issubclass(lookup(kind, name).options, PluginOptions)


def test_models_know_nothing_of_which_kernel_fused_what():
    """The attention layer decides, when built, whether the rope kernel stores K/V; models/ never asks."""
    for path in glob.glob(os.path.join(ROOT, "allmos", "models", "*.py")):
        text = Path(path).read_text()
        for word in ("writes_kv", "KVTarget", "kv_target", "qk_rope", "kv_store"):
            assert word not in text, f"{os.path.relpath(path, ROOT)} mentions {word}"


def test_kv_cache_dtype_row_and_every_plugin_that_touches_the_pages_handles_fp8_or_is_refused():
    """kv_cache_dtype's README row lists its values; with fp8, an attention backend or KV store either
    reads / writes FP8 pages (`fp8_kv_cache`) or validation refuses it, naming kv_cache_dtype=fp8."""
    from allmos.config import KV_CACHE_DTYPES
    from allmos.errors import ConfigError
    from allmos.registry import CheckContext, make_options
    from allmos.validation import check_fp8_pages

    assert row_values("kv_cache_dtype") == set(KV_CACHE_DTYPES)
    where = CheckContext("cuda", 256, lookup("attention", "triton").cls, "fp8")
    for kind in ("attention", "kv_store"):
        for name in names(kind):
            cls = lookup(kind, name).cls
            if cls.fp8_kv_cache:
                check_fp8_pages(kind, cls, "fp8")
                continue
            with pytest.raises(ConfigError, match="kv_cache_dtype=fp8"):
                cls.check(make_options(kind, name), where)
                check_fp8_pages(kind, cls, "fp8")
