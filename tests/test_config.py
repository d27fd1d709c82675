"""The run configuration: fields, defaults, layers, checks and their messages."""

import dataclasses
import typing

import numpy as np
import pytest

from evolve.errors import UserError
from evolve.runs.config import (
    CHECKS,
    DESCRIPTIONS,
    FIELDS,
    GROUPS,
    RunConfig,
    build_config,
    dump_config,
    help_config,
    load_config,
    replace_field,
)
from evolve.search.engine import SearchParams
from evolve.search.variation import VariationParams

EXP2 = {"problem": "exp2"}


def _names(cls, prefix=""):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.init:
            yield prefix + f.name
            if dataclasses.is_dataclass(hints[f.name]):
                yield from _names(hints[f.name], prefix + f.name + ".")


def test_every_dataclass_field_has_a_description():
    names = list(_names(RunConfig))
    assert len(names) >= len(dataclasses.fields(SearchParams)) + len(
        dataclasses.fields(VariationParams))
    missing = [n for n in names if not DESCRIPTIONS.get(n)]
    assert not missing, f"add one-line descriptions to evolve.runs.config.DESCRIPTIONS: {missing}"
    assert "search.population" in names and "search.variation.crossover_rate" in names


def test_descriptions_and_checks_name_real_fields():
    known = set(FIELDS) | set(GROUPS)
    assert not set(DESCRIPTIONS) - known, "DESCRIPTIONS has entries for fields that are gone"
    assert not set(CHECKS) - known, "CHECKS has entries for fields that are gone"
    assert all(f.description for f in FIELDS.values())


def test_dict_fields_are_maps_of_known_keys():
    for key in VariationParams().mutation_weights:
        assert f"search.variation.mutation_weights.{key}" in FIELDS
    assert GROUPS["search.variation.mutation_weights"] is dict


def test_defaults():
    config = build_config(overrides=EXP2)
    assert config == RunConfig("exp2")
    assert config.search == SearchParams()


def test_layers_file_then_set_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("problem: exp2\nseed: 3\ngenerations: 7\n"
                    "search:\n  population: 32\n  children: 8\n"
                    "search.variation.crossover_rate: 0.5\n")
    config = build_config(path, ["search.children=9", "seed=4"], {"generations": 11})
    assert (config.problem, config.seed, config.generations) == ("exp2", 4, 11)
    assert (config.search.population, config.search.children) == (32, 9)
    assert config.search.variation.crossover_rate == 0.5


def test_partial_map_keeps_the_other_defaults():
    config = build_config(sets=["search.variation.mutation_weights={insert: 3, swap: 0}"],
                          overrides=EXP2)
    weights = config.search.variation.mutation_weights
    default = VariationParams().mutation_weights
    assert weights == {**default, "insert": 3.0, "swap": 0.0}
    one = build_config(sets=["search.variation.mutation_weights.insert=3"], overrides=EXP2)
    assert one.search.variation.mutation_weights["insert"] == 3.0


def test_values_are_converted_where_nothing_is_lost():
    config = build_config(sets=["search.init_length=[1, 4]", "search.fec_max_hits=null",
                                "search.audit_rate=1e-2", "search.population=1e2",
                                "search.fit=false"], overrides=EXP2)
    assert config.search.init_length == (1, 4)
    assert config.search.fec_max_hits is None
    assert config.search.audit_rate == 0.01
    assert config.search.population == 100 and isinstance(config.search.population, int)
    assert config.search.fit is False


def test_dump_and_load_round_trip(tmp_path):
    config = build_config(sets=["search.population=17", "search.init_length=[3, 5]",
                                "search.variation.mutation_weights.delete=0.25",
                                "search.fec_max_hits=4"], overrides={**EXP2, "seed": 9})
    path = tmp_path / "config.yaml"
    path.write_text(dump_config(config))
    assert load_config(path) == config
    assert dump_config(load_config(path)) == dump_config(config)


def test_replace_field_is_checked():
    config = build_config(overrides=EXP2)
    assert replace_field(config, "generations", 50).generations == 50
    with pytest.raises(UserError, match="'generations' = -1 must be at least 0"):
        replace_field(config, "generations", -1)


def test_help_lists_every_field_with_default_and_description():
    text = help_config()
    for name, f in FIELDS.items():
        line = next(line for line in text.splitlines() if line.startswith(name + " "))
        assert f.description in line
    assert "search.population" in text and "200" in text
    assert "search.variation.mutation_weights" in text


@pytest.mark.parametrize("sets, expected", [
    (["search.populaton=3"], ["'search.populaton'", "did you mean 'search.population'?"]),
    (["generation=3"], ["'generation'", "did you mean 'generations'?"]),
    (["search.variation.mutation_weights.insrt=1"],
     ["did you mean 'search.variation.mutation_weights.insert'?"]),
    (["search.population=many"], ["'search.population' = 'many'", "not an integer",
                                  "search.population: 200 (the default)"]),
    (["search.fit=maybe"], ["'search.fit' = 'maybe'", "true or false"]),
    (["search.audit_rate=2"], ["'search.audit_rate' = 2.0", "between 0 and 1"]),
    (["search.init_length=[5, 2]"], ["'search.init_length' = [5, 2]", "min <= max"]),
    (["search.init_length=3"], ["'search.init_length' = 3", "a list of 2 values"]),
    (["search.variation.mutation_weights.swap=-1"], ["'search.variation.mutation_weights.swap'",
                                                     "at least 0"]),
    (["search=3"], ["'search' = 3 (from --set)", "group of fields", "population"]),
    (["population"], ["--set expects NAME=VALUE", "'population'"]),
    (["checkpoint_every=0"], ["'checkpoint_every' = 0", "at least 1"]),
])
def test_bad_values_name_field_value_and_fix(sets, expected):
    with pytest.raises(UserError) as info:
        build_config(sets=sets, overrides=EXP2)
    message = str(info.value)
    assert "\n" not in message
    for part in expected:
        assert part in message


def test_problem_is_required():
    with pytest.raises(UserError, match="no problem given"):
        build_config()


@pytest.mark.parametrize("text, expected", [
    ("search:\n  population: [1,\n", "is not valid YAML at line"),
    ("- 1\n- 2\n", "must hold a map of fields"),
    ("!!python/object/apply:os.system ['true']\n", "is not valid YAML"),  # safe_load only
    ("search:\n  populaton: 4\n", "did you mean 'search.population'?"),
])
def test_bad_files(tmp_path, text, expected):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as info:
        build_config(path, overrides=EXP2)
    assert expected in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        build_config(tmp_path / "nope.yaml", overrides=EXP2)


def test_empty_file_is_all_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("# nothing\n")
    assert build_config(path, overrides=EXP2) == RunConfig("exp2")


def test_evaluator_choices_are_fields_written_to_config_yaml(tmp_path):
    """The evaluator's backend and the CPU kernel's math change output bits: they are
    config fields (written to config.yaml), not environment variables."""
    config = build_config(sets=["search.evaluator.backend=lax",
                                "search.evaluator.native_math=own"],
                          overrides={"problem": "exp2"})
    assert config.search.evaluator.backend == "lax"
    assert config.search.evaluator.native_math == "own"
    text = dump_config(config)
    assert "evaluator:" in text and "backend: lax" in text and "native_math: own" in text
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert load_config(path) == config
    for sets, expected in ((["search.evaluator.backend=gpu"], "search.evaluator.backend"),
                           (["search.evaluator.native_math=fast"],
                            "'libmvec' or 'own' or 'own32'")):
        with pytest.raises(UserError, match=expected):
            build_config(sets=sets, overrides={"problem": "exp2"})


def test_an_old_config_yaml_without_the_evaluator_fields_loads_as_it_ran(tmp_path):
    """A config.yaml written before the evaluator fields existed: the default backend, and
    the math those runs had (libmvec, the default then), not today's default (own32)."""
    config = build_config(overrides={"problem": "exp2"})
    text = dump_config(config)
    old = "\n".join(line for line in text.splitlines()
                    if "evaluator" not in line and "backend" not in line
                    and "native_math" not in line) + "\n"
    assert "evaluator" not in old
    path = tmp_path / "config.yaml"
    path.write_text(old)
    loaded = load_config(path)
    assert loaded.search.evaluator.backend == "auto"
    assert loaded.search.evaluator.native_math == "libmvec"
    assert config.search.evaluator.native_math == "own32"  # a new run's
    r = dataclasses.replace
    assert loaded == r(config, search=r(config.search, evaluator=r(config.search.evaluator,
                                                                   native_math="libmvec")))


def test_a_config_yaml_without_sampling_keeps_the_old_points(tmp_path):
    from evolve.runs.config import LEGACY, run_problem, to_dict

    new = build_config(overrides=EXP2)
    assert new.sampling.per_binade is None and run_problem(new).binade_share == 0.5
    old = to_dict(new)
    del old["sampling"]  # written before the field existed
    path = tmp_path / "config.yaml"
    path.write_text(__import__("yaml").safe_dump(old))
    loaded = load_config(path)
    assert loaded.sampling.per_binade == LEGACY["sampling.per_binade"] == 0.0
    assert run_problem(loaded).binade_share == 0.0
    recorded = replace_field(new, "sampling.per_binade", 0.25)
    path.write_text(dump_config(recorded))
    assert load_config(path) == recorded and run_problem(recorded).binade_share == 0.25


def test_a_config_yaml_without_near_zeros_keeps_the_old_points(tmp_path):
    from evolve.runs.config import LEGACY, run_problem, to_dict

    new = build_config(overrides={**EXP2, "problem": "log2_nofma"})
    assert new.sampling.near_zeros is None and run_problem(new).near_zeros_on
    old = to_dict(new)
    del old["sampling"]["near_zeros"]  # written before the field existed
    path = tmp_path / "config.yaml"
    path.write_text(__import__("yaml").safe_dump(old))
    loaded = load_config(path)
    assert loaded.sampling.near_zeros is LEGACY["sampling.near_zeros"] is False
    problem = run_problem(loaded)
    assert not problem.near_zeros_on
    assert np.abs(problem.points(4096).astype(np.float64) - 1).min() > 1e-6
    with pytest.raises(UserError, match="sampling.near_zeros.*true or false or null"):
        build_config(sets=["sampling.near_zeros=3"], overrides=EXP2)


def test_sampling_and_certify_fields_are_checked():
    with pytest.raises(UserError, match="sampling.per_binade.*between 0 and 1"):
        build_config(sets=["sampling.per_binade=2"], overrides=EXP2)
    with pytest.raises(UserError, match="certify.seconds.*at least 0"):
        build_config(sets=["certify.seconds=-1"], overrides=EXP2)


def test_search_starts_is_checked_and_linear_only():
    assert build_config(sets=["search.starts=baselines"], overrides=EXP2).search.starts == \
        "baselines"
    with pytest.raises(UserError, match="search.starts.*must be one of 'random'"):
        build_config(sets=["search.starts=sollya"], overrides=EXP2)
    with pytest.raises(UserError, match="starts from random trees only"):
        build_config(sets=["search.starts=both", "search.representation=tree"], overrides=EXP2)
