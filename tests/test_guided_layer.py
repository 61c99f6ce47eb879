import numpy as np

from mutatui.guided.layer import LEVELS, PredictedLayer


def test_cells_take_the_strongest_tile_they_touch():
    tiles = np.array([[0.0, 1.0, 2.0], [3.0, 40.0, 5.0]], dtype=np.float32)
    layer = PredictedLayer(tiles, tile_size=4)  # a 8 x 12 matrix, say
    assert layer.value(0, 1, 0, 1) == 0.0  # one element in the first tile
    assert layer.value(0, 4, 4, 8) == 1.0
    assert layer.value(0, 8, 0, 12) == 40.0  # the whole matrix in one cell
    assert layer.value(3, 5, 7, 9) == 40.0  # a cell straddling four tiles
    assert layer.value(7, 8, 11, 12) == 5.0  # the last element
    assert layer.level(0, 1, 0, 1) == 0  # zero score: nothing predicted
    assert layer.level(4, 8, 4, 8) == LEVELS - 1  # the top tile
    levels = [layer.level(r, r + 1, c, c + 1) for r in (0, 4) for c in (0, 4, 8)]
    order = np.argsort([0.0, 1.0, 2.0, 3.0, 40.0, 5.0], kind="stable")
    assert [levels[i] for i in order] == sorted(levels)  # levels grow with the score


def test_an_empty_prediction_shades_nothing():
    layer = PredictedLayer(np.zeros((2, 2), dtype=np.float32), tile_size=64)
    assert layer.level(0, 128, 0, 128) == 0
