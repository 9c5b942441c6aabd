import numpy as np
import pytest

from mlcv_cli.core.optim import OPTIMIZERS, init_state
from mlcv_cli.core.training import UPDATE_BLOCK, update_in_blocks


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("shape", [(300, 500), (3 * UPDATE_BLOCK + 7,), (40, 10)])
def test_blockwise_update_is_the_whole_array_update(name, shape):
    rng = np.random.default_rng(0)
    w = rng.standard_normal(shape).astype(np.float32)
    whole, blocks = init_state(name, w, lr=0.01), init_state(name, w, lr=0.01)
    w_whole, w_blocks = w.copy(), w.copy()
    for _ in range(3):
        dw = rng.standard_normal(shape).astype(np.float32)
        w_whole, whole = OPTIMIZERS[name](w_whole, dw, whole)
        assert update_in_blocks(OPTIMIZERS[name], w_blocks, dw, blocks) is w_blocks
        assert np.array_equal(w_blocks, w_whole)
    for key, value in whole.items():
        assert np.array_equal(blocks[key], value), key
