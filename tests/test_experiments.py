"""The experiment's cell row (nbs/10_experiments.ipynb): every masking method's row says where its last-epoch masks fall on
the held-out images (chapter 09a's fields), the strategies that rank patches with `choice_on_object`; baselines leave them None."""
import math
import pytest
from semmae_edu.experiments import compute_cell, cell_row, final_plans, sweep_data, METHODS, RECIPES
from semmae_edu.alignment import ALIGNMENT_COLUMNS
from semmae_edu.train import STRATEGIES

THREADS = 1   # one intra-op thread (tests/conftest.py)
TINY = dict(n_train=32, n_test=16, batch_size=32, n_finetune=32, finetune_epochs=1, finetune_from=1, part_steps=2)

def test_every_method_has_a_registered_recipe():
    assert {'colormae', 'hpm'} <= set(METHODS) and all(RECIPES[m][0] in STRATEGIES for m in METHODS)

@pytest.mark.parametrize('method', ['random', 'colormae', 'attmask', 'hpm'])
def test_rows_say_where_masks_fall(method):
    cell = compute_cell(method, 2, 0, TINY)
    row = cell.row
    shares = [row[k] for k in ('parts_whole', 'parts_partly', 'parts_untouched')]
    assert 0 <= row['mask_on_object'] <= 1 and abs(sum(shares) - 1) < 1e-9, row
    ranks = method in ('attmask', 'hpm')                       # AttMask ranks by attention (active from epoch 1 of 2), HPM by its teacher
    assert (row['choice_on_object'] is not None) == ranks and (not ranks or 0 <= row['choice_on_object'] <= 1)
    assert math.isfinite(row['final_loss'])
    if method == 'hpm':                                        # its plans need the teacher of its run, which the cell hands back
        batch = {k: v[:4] for k, v in sweep_data(TINY['n_train'], TINY['n_test'])[1].tensors().items()}
        assert final_plans({'hpm': cell.model}, batch, 2, strategies={'hpm': cell.strategy})['hpm'].counts['masked'] == 48

def test_baseline_rows_have_no_masks():
    "A baseline's numbers carry no alignment fields; its row fills them with None (the quick form of the test below)."
    row = cell_row('pixels', 2, 0, dict(probe_mean=0.5, knn=0.4), 1.0)
    assert all(row[k] is None for k in ALIGNMENT_COLUMNS) and row['probe_mean'] == 0.5

@pytest.mark.slow
def test_baseline_cell_has_no_masks():
    "The same through a whole pixels cell (a minute: the probe's L2 search on 32 separable images runs L-BFGS to its cap)."
    row = compute_cell('pixels', 2, 0, TINY).row
    assert all(row[k] is None for k in ALIGNMENT_COLUMNS)
