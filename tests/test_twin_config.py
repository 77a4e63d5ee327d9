"""twin.config: TOML into frozen dataclasses, type checks, unknown keys, dotted overrides."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest

from twin.config import apply_overrides, from_dict, load_config, to_dict
from twin.errors import InputError


@dataclass(frozen=True)
class Inner:
    lr: float = 1e-3
    steps: int = 10


@dataclass(frozen=True)
class Schema:
    seed: int
    name: str = "x"
    mode: Literal["a", "b"] = "a"
    flag: bool = False
    size: tuple[int, int] = (2, 3)
    tags: list[str] = field(default_factory=list)
    extra: Optional[float] = None
    weights: dict[str, float] = field(default_factory=dict)
    inner: Inner = Inner()


def _write(tmp_path, text):
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_a_full_config_loads_into_a_frozen_dataclass_with_coerced_types(tmp_path):
    p = _write(tmp_path, 'seed = 3\nmode = "b"\nflag = true\nsize = [4, 5]\ntags = ["u"]\nextra = 2\n'
                         '[weights]\na = 1\n[inner]\nlr = 1\n')
    c = load_config(p, Schema)
    assert c == Schema(seed=3, mode="b", flag=True, size=(4, 5), tags=["u"], extra=2.0, weights={"a": 1.0},
                       inner=Inner(lr=1.0))
    assert isinstance(c.inner.lr, float) and isinstance(c.size, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.seed = 4  # type: ignore[misc]


@pytest.mark.parametrize("text, key", [
    ("seed = 1\nbogus = 2", "bogus"),
    ("seed = 1\n[inner]\nnope = 2", "inner.nope"),
    ('seed = "one"', "seed"),
    ("seed = 1.5", "seed"),
    ("seed = true", "seed"),
    ('seed = 1\nmode = "c"', "mode"),
    ("seed = 1\nflag = 1", "flag"),
    ("seed = 1\nsize = [1]", "size"),
    ('seed = 1\nsize = [1, "a"]', "size[1]"),
    ("seed = 1\ntags = 3", "tags"),
    ('seed = 1\nextra = "x"', "extra"),
    ("seed = 1\ninner = 3", "inner"),
    ("name = 'x'", "seed"),
])
def test_wrong_types_unknown_and_missing_keys_name_the_dotted_key(tmp_path, text, key):
    with pytest.raises(InputError) as err:
        load_config(_write(tmp_path, text), Schema)
    assert err.value.field == key and str(tmp_path) in str(err.value)


def test_overrides_set_dotted_keys_parsed_as_toml_and_bare_words_as_strings(tmp_path):
    p = _write(tmp_path, "seed = 1\n")
    c = load_config(p, Schema, ["inner.lr=3e-4", "seed=7", "name=hello", "size=[8, 9]", "flag=true"])
    assert (c.inner.lr, c.seed, c.name, c.size, c.flag) == (3e-4, 7, "hello", (8, 9), True)
    with pytest.raises(InputError, match="key.sub=value"):
        apply_overrides({}, ["noequals"])
    with pytest.raises(InputError, match="inner.bad"):
        load_config(p, Schema, ["inner.bad=1"])


def test_overrides_do_not_mutate_the_input_and_to_dict_round_trips():
    data = {"seed": 1, "inner": {"lr": 0.1}}
    out = apply_overrides(data, ["inner.lr=0.5"])
    assert data["inner"]["lr"] == 0.1 and out["inner"]["lr"] == 0.5
    c = from_dict(Schema, {"seed": 2, "size": [1, 2]})
    assert from_dict(Schema, to_dict(c)) == c and to_dict(c)["size"] == [1, 2]


def test_missing_and_malformed_files_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_config(tmp_path / "absent.toml", Schema)
    with pytest.raises(InputError, match="TOML"):
        load_config(_write(tmp_path, "seed = = 1"), Schema)
