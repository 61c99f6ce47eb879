"""Screen specs, site samplers, the plan's enumeration and its shards (tiny model, no decoding)."""

from __future__ import annotations

import pytest

from mutatui.engine.mutations import Kind
from mutatui.errors import MutatuiError
from mutatui.screening.plan import SHARD_CHUNK, WHOLE, Shard, parse_shard
from mutatui.screening.samplers import (
    Full,
    Lines,
    RandomElements,
    Region,
    SiteList,
    Stride,
    Tiles,
    parse_sampler,
)
from mutatui.screening.spec import (
    ScreenSpec,
    load_spec_file,
    parse_layers,
    spec_from_json,
    spec_from_table,
)

SPEC_TOML = """
name = "tiny-tiles"
model = "tiny"
layers = "0-1"
matrices = ["q", "down"]
kinds = ["max", "min", "zero"]
max_new_tokens = 12

[decoding]
mode = "sample"
temperature = 0.7
seed = 3

[sites]
sampler = "tiles"
size = [8, 16]

[[probes]]
name = "fly"
style = "describe"
prompt = "The life cycle of Drosophila:"

[[probes]]
prompt = "Explain the tides."
style = "explain"

[choice]
questions = "none"
"""


def _elements(sampler, info):
    return [sampler.site_at(info, i) for i in range(sampler.count(info))]


def test_toml_spec_round_trips_through_its_stored_json(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text(SPEC_TOML)
    spec = spec_from_table(load_spec_file(path))
    assert spec.name == "tiny-tiles"
    assert spec.layers == (0, 1)
    assert spec.matrices == ("q", "down")
    assert spec.kinds == ("max", "min", "zero")
    assert spec.decoding.mode == "sample" and spec.decoding.seed == 3
    assert spec.decoding.max_new_tokens == 12
    assert spec.sites == Tiles(8, 16)
    assert [p.name for p in spec.probes] == ["fly", "p2"]
    assert spec.choice is None
    again = spec_from_json(spec.to_json())
    assert again == spec
    assert again.digest == spec.digest


def test_digest_ignores_the_name_but_not_the_mutations():
    base = ScreenSpec(model="m")
    assert ScreenSpec(model="m", name="other").digest == base.digest
    assert ScreenSpec(model="m", kinds=("max",)).digest != base.digest
    assert ScreenSpec(model="m", sites=Tiles(32, 32)).digest != base.digest


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, "model is required"),
        ({"model": "m", "colour": 1}, "unknown keys colour"),
        ({"model": "m", "kinds": ["max", "huge"]}, "bad mutation kind 'huge'"),
        ({"model": "m", "layers": "3-1"}, "bad layer range"),
        ({"model": "m", "sites": {"sampler": "hexes"}}, "unknown sampler 'hexes'"),
        ({"model": "m", "sites": {"sampler": "random"}}, "random needs count"),
        ({"model": "m", "sites": {"sampler": "tiles", "size": 0}}, "at least 1"),
        ({"model": "m", "sites": {"sampler": "tiles", "seed": 1}}, "tiles takes size"),
        ({"model": "m", "sites": {"sampler": "list", "sites": ["L1.q[1]"]}}, "bad site 'L1.q"),
        ({"model": "m", "probes": [{"style": "x"}]}, "needs a non-empty prompt"),
        ({"model": "m", "choice": {"questions": "/no/such.jsonl"}}, "no such questions file"),
        ({"model": "m", "decoding": {"mode": "beam"}}, "unknown decoding 'beam'"),
        ({"model": "m", "max_new_tokens": "many"}, "max_new_tokens must be int"),
        (
            {"model": "m", "probes": [{"prompt": "a", "name": "x"}, {"prompt": "b", "name": "x"}]},
            "two probes are named 'x'",
        ),
    ],
)
def test_bad_spec_is_one_clear_line(table, message):
    with pytest.raises(MutatuiError, match=message) as caught:
        spec_from_table(table)
    assert "\n" not in str(caught.value)


def test_bad_toml_file_is_one_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("model = \n")
    with pytest.raises(MutatuiError, match="not valid TOML"):
        load_spec_file(path)
    with pytest.raises(MutatuiError, match="no such spec file"):
        load_spec_file(tmp_path / "missing.toml")


def test_layers_forms():
    assert parse_layers("all") is None
    assert parse_layers("0-2,5") == (0, 1, 2, 5)
    assert parse_layers([2, 0, 2]) == (0, 2)
    with pytest.raises(MutatuiError, match="bad layers"):
        parse_layers("x")


@pytest.mark.parametrize(
    ("text", "sampler"),
    [
        ("tiles:64", Tiles(64, 64)),
        ("tiles:8x16", Tiles(8, 16)),
        ("random:100,seed=7", RandomElements(100, 7)),
        ("random:5", RandomElements(5, 0)),
        ("stride:4x8,offset=1x2", Stride(4, 8, 1, 2)),
        ("lines:cols,every=2", Lines("cols", 2)),
        ("region:0:4,8:12", Region(0, 4, 8, 12)),
        ("list:L0.q[1,2];L1.v[0:2,0:2]", SiteList(("L0.q[1,2]", "L1.v[0:2,0:2]"))),
        ("full", Full()),
    ],
)
def test_sampler_text_forms(text, sampler):
    assert parse_sampler(text) == sampler


@pytest.mark.parametrize(
    "text", ["tiles:axb", "random:ten", "region:0:4", "lines:diagonal", "dots"]
)
def test_bad_sampler_text(text):
    with pytest.raises(MutatuiError, match="sites:"):
        parse_sampler(text)


def test_tiles_cover_the_matrix_once_without_overlap(tiny):
    _, catalog = tiny
    for info in catalog:
        covered = [[0] * info.cols for _ in range(info.rows)]
        for site in _elements(Tiles(24, 10), info):
            for r in range(site.row0, site.row1):
                for c in range(site.col0, site.col1):
                    covered[r][c] += 1
        assert all(all(v == 1 for v in row) for row in covered), info.label


def test_random_elements_are_distinct_seeded_and_per_matrix(tiny):
    _, catalog = tiny
    info = catalog.get(1, "down")
    first = _elements(RandomElements(50, 3), info)
    assert len(set(first)) == 50 and all(s.is_element for s in first)
    assert first == _elements(RandomElements(50, 3), info)
    assert first != _elements(RandomElements(50, 4), info)
    other = catalog.get(2, "down")
    assert [(s.row0, s.col0) for s in first] != [
        (s.row0, s.col0) for s in _elements(RandomElements(50, 3), other)
    ]
    assert len(_elements(RandomElements(10**6, 0), info)) == info.rows * info.cols


def test_stride_lines_region_full(tiny):
    _, catalog = tiny
    info = catalog.get(0, "gate")  # 64 x 32
    stride = _elements(Stride(16, 8, 1, 2), info)
    assert [(s.row0, s.col0) for s in stride[:5]] == [(1, 2), (1, 10), (1, 18), (1, 26), (17, 2)]
    assert len(stride) == 4 * 4
    lines = _elements(Lines("both", 1), info)
    assert len(lines) == 64 + 32
    assert lines[0].shape == (1, 32) and lines[-1].shape == (64, 1) and lines[-1].col0 == 31
    region = _elements(Region(2, 4, 5, 8), info)
    assert [(s.row0, s.col0) for s in region] == [(r, c) for r in (2, 3) for c in (5, 6, 7)]
    full = _elements(Full(), info)
    assert len(full) == 64 * 32 and full[33] == full[33].element(0, "gate", 1, 1)


def test_region_that_does_not_fit_is_refused(tiny):
    _, catalog = tiny
    with pytest.raises(MutatuiError, match=r"does not fit L0\.q"):
        ScreenSpec(model="m", sites=Region(0, 40, 0, 4), matrices=("q",)).plan(catalog)


def test_same_spec_gives_the_same_mutations_in_the_same_order(tiny):
    _, catalog = tiny
    spec = ScreenSpec(model="m", sites=RandomElements(7, 1), kinds=("max", "min"))
    first = [str(m) for batch in spec.plan(catalog).batches() for _, m in batch]
    second = [str(m) for batch in spec.plan(catalog).batches() for _, m in batch]
    assert first == second
    plan = spec.plan(catalog)
    assert len(plan) == len(catalog) * 7 * 2
    assert [str(plan.mutation_at(i)) for i in range(len(plan))] == first
    # ids follow (layer, matrix) order, kinds innermost
    infos = [plan.matrix_of(i) for i in range(len(plan))]
    order = [(info.layer, catalog.names.index(info.name)) for info in infos]
    assert order == sorted(order)
    assert plan.mutation_at(0).kind is Kind.MAX and plan.mutation_at(1).kind is Kind.MIN
    assert plan.mutation_at(0).site == plan.mutation_at(1).site


def test_layers_and_matrices_select_and_list_sampler_groups_by_matrix(tiny):
    _, catalog = tiny
    plan = ScreenSpec(model="m", layers=(2,), matrices=("v", "q"), sites=Tiles(8, 8)).plan(catalog)
    assert [info.label for info in plan.matrices] == ["L2.q", "L2.v"]
    listed = ScreenSpec(
        model="m", kinds=("max",), sites=SiteList(("L2.v[1,1]", "L0.q[0:2,0:2]", "L2.v[3,3]"))
    ).plan(catalog)
    assert [str(listed.mutation_at(i).site) for i in range(len(listed))] == [
        "L0.q[0:2,0:2]",
        "L2.v[1,1]",
        "L2.v[3,3]",
    ]
    with pytest.raises(MutatuiError, match="layer 9 out of range"):
        ScreenSpec(model="m", layers=(9,)).plan(catalog)
    with pytest.raises(MutatuiError, match="unknown matrix 'w'"):
        ScreenSpec(model="m", matrices=("w",)).plan(catalog)


def test_batches_stay_within_a_matrix_and_resume_anywhere(tiny):
    _, catalog = tiny
    plan = ScreenSpec(model="m", sites=Tiles(8, 8)).plan(catalog)
    batches = list(plan.batches(size=5))
    assert all(len(b) <= 5 for b in batches)
    for batch in batches:
        assert len({plan.matrix_of(i).label for i, _ in batch}) == 1
    ids = [i for b in batches for i, _ in b]
    assert ids == list(range(len(plan)))
    later = [i for b in plan.batches(start=37, size=5) for i, _ in b]
    assert later == list(range(37, len(plan)))


def test_shards_partition_the_plan(tiny):
    _, catalog = tiny
    plan = ScreenSpec(model="m", sites=Tiles(4, 4)).plan(catalog)
    total = len(plan)
    assert total > 3 * SHARD_CHUNK
    seen: list[int] = []
    for k in (1, 2, 3):
        shard = Shard(k, 3)
        ids = [i for b in plan.batches(shard, size=16) for i, _ in b]
        assert len(ids) == shard.size(total)
        assert all(shard.owns(i) for i in ids)
        seen += ids
    assert sorted(seen) == list(range(total))
    assert WHOLE.size(total) == total


@pytest.mark.parametrize("text", ["0/2", "3/2", "1-2", "a/b", "1/"])
def test_bad_shard(text):
    with pytest.raises(MutatuiError, match="bad shard"):
        parse_shard(text)


@pytest.mark.parametrize("size", [1, 5, 16, 1000])
def test_batch_fill_is_the_mean_batch_a_mutation_sits_in(tiny, size):
    """What an estimate grades its sample in: as full as the screen's own batches."""
    _, catalog = tiny
    for sites in (Tiles(8, 8), RandomElements(3, 1)):
        plan = ScreenSpec(model="m", sites=sites).plan(catalog)
        batches = list(plan.batches(size=size))
        mean = sum(len(batch) ** 2 for batch in batches) / len(plan)
        assert plan.batch_fill(size) == max(1, round(mean))
    assert ScreenSpec(model="m", sites=RandomElements(3, 1)).plan(catalog).batch_fill(1000) == 6
