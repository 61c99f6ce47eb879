import pytest

from mutatui.engine.sites import Site, parse_site
from mutatui.errors import MutatuiError


@pytest.mark.parametrize(
    "text",
    ["L29.down[12,345]", "L29.down[0:64,320:384]", "L0.q[5,0:64]", "L3.self_attn.dense[1,2]"],
)
def test_text_form_round_trips(text):
    assert str(parse_site(text)) == text


def test_element_and_block_shapes():
    element = parse_site("L29.down[12,345]")
    assert element == Site.element(29, "down", 12, 345)
    assert element.is_element and element.size == 1
    block = parse_site("L29.down[0:64,320:384]")
    assert block.shape == (64, 64) and not block.is_element


def test_open_ranges_resolve_against_the_model(tiny):
    _, catalog = tiny
    column = parse_site("L1.v[:,17]", catalog)
    info = catalog.get(1, "v")
    assert (column.row0, column.row1, column.col0, column.col1) == (0, info.rows, 17, 18)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("L29.down[12,345", "bad site"),
        ("down[1,2]", "bad site"),
        ("L1.q[1]", "give a row and a column"),
        ("L1.q[a,2]", "bad row index"),
        ("L1.q[:,2]", "open range"),
    ],
)
def test_bad_text_is_one_clear_line(text, message):
    with pytest.raises(MutatuiError, match=message) as raised:
        parse_site(text)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("L3.q[0,0]", r"layer 3 out of range; valid: 0\.\.2"),
        ("L0.query[0,0]", "unknown matrix 'query'; valid: q, k, v, o, gate, up, down"),
        ("L0.k[16,0]", r"row 16 out of range for L0.k \(16x32\); valid rows: 0\.\.15"),
        ("L0.down[0,64]", r"column 64 out of range .* valid columns: 0\.\.63"),
        ("L0.down[0:40,0:8]", "row 0:40 out of range"),
    ],
)
def test_out_of_range_says_what_is_valid(tiny, text, message):
    _, catalog = tiny
    with pytest.raises(MutatuiError, match=message):
        parse_site(text, catalog)
