"""The demo end to end at a tiny budget: every report file, every method's numbers, the same numbers as the sweep's cells of
its point, options refused before any work, folders left reusable."""
import json, re, math, time
import pytest
import torch
from semmae_edu.experiments import METHODS, DEFAULT_METHODS, POINT, BUDGETS
from semmae_edu.demo import run_demo
from semmae_edu.cli import demo_command
from semmae_edu.sweep import run_cell

THREADS = 1   # one intra-op thread (tests/conftest.py)

TINY = dict(n_train=96, n_test=40, epochs=2, batch_size=32, part_steps=10, n_finetune=96, finetune_epochs=1, finetune_from=1, n_pictures=3, progress=False)

@pytest.mark.slow
def test_demo_tiny_report(tmp_path):
    out = tmp_path / 'report'
    m = run_demo(out, **TINY)
    for f in ('report.md', 'report.html', 'metrics.json', 'figures/losses.png', 'figures/masks.png', 'figures/reconstructions.png',
              'figures/attention.png', 'figures/parts.png'):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    saved = json.loads((out / 'metrics.json').read_text())
    names = list(saved['methods'])
    assert names == list(DEFAULT_METHODS) + ['untrained', 'scratch', 'raw pixels']
    s = saved['methods']['semmae']   # SemMAE's stage 1 ran in the same demo and was scored against the true parts
    assert all(0. <= s[k] <= 1. for k in ('part_miou', 'kmeans_miou', 'grid_miou', 'part_nmi')) and 'part_miou' not in saved['methods']['random']
    for name in DEFAULT_METHODS + ('untrained',):
        r = saved['methods'][name]
        for k in ('probe_cls', 'probe_mean', 'knn', 'attention_mass', 'attention_iou', 'attention_chance'): assert 0. <= r[k] <= 1., (name, k)
    for name in DEFAULT_METHODS: assert math.isfinite(saved['methods'][name]['final_loss']) and 0 <= saved['methods'][name]['finetune'] <= 1
    assert saved['methods']['raw pixels']['probe_cls'] is None          # pixels have no CLS token: no such row entry
    assert saved['methods']['untrained']['finetune'] is None and 0 <= saved['methods']['scratch']['finetune'] <= 1
    for name in DEFAULT_METHODS: assert len(saved['losses'][name]) == 2 * 3   # 2 epochs of 96 // 32 steps
    assert sorted(p.name for p in out.iterdir()) == ['figures', 'metrics.json', 'report.html', 'report.md']   # the report only
    assert saved['settings']['n_train'] == 96 and saved['settings']['epochs'] == 2   # the report records what was trained
    assert 'not comparable' in ' '.join(saved['notes'])                   # tiny settings: not the sweep's point, and it says so
    page = (out / 'report.html').read_text()
    assert page.count('src="data:image/png;base64,') == 5
    text = re.sub(r'data:image/png;base64,[A-Za-z0-9+/=]+', '', page).replace('http-equiv', '')   # base64 may spell 'http' by chance
    assert 'http' not in text                                               # self-contained: nothing loaded from another host
    md = (out / 'report.md').read_text()
    assert all(f'| {n} |' in md for n in names) and '](figures/masks.png)' in md
    with pytest.raises(FileExistsError, match='not empty'): run_demo(out, **TINY)
    assert demo_command(out=str(out), **{k: v for k, v in TINY.items() if k != 'n_pictures'}, methods='random', overwrite=True) == 0
    assert list(json.loads((out / 'metrics.json').read_text())['methods']) == ['random', 'untrained', 'scratch', 'raw pixels']

def _numbers(row:dict) -> dict:
    "A row's numbers: without which cell it is, the timings and where it ran (the sweep's rows record commit, device, torch)."
    return {k: v for k, v in row.items()
            if k not in ('method', 'epochs', 'seed', 'commit', 'device', 'torch') and not k.endswith('seconds')}

@pytest.mark.slow   # the smallest case takes 1.5-3 min here (the baselines' probes): the quick loop leaves it out
@pytest.mark.parametrize('methods, epochs', [(('random',), 1), (DEFAULT_METHODS, 2), (('colormae', 'hpm'), 2)])
def test_demo_rows_are_the_sweeps_cells(tmp_path, methods, epochs):
    "A demo is one point of the sweep: at a tiny budget, every number of every row equals the sweep's cell of that point."
    budget = dict(n_train=32, n_test=10, batch_size=32, part_steps=2, n_finetune=32, finetune_epochs=1, finetune_from=1)
    m = run_demo(tmp_path / 'demo', methods=methods, epochs=epochs, seed=0, n_pictures=2, progress=False, **budget)
    shown = dict(zip(methods, methods)) | {'untrained': 'untrained', 'scratch': 'scratch', 'pixels': 'raw pixels'}
    assert list(m['methods']) == list(shown.values())
    for method, name in shown.items():                                   # the sweep's cells, in the sweep's order
        cell = run_cell(method, epochs, 0, tmp_path / 'sweep', budget)
        assert _numbers(m['methods'][name]) == _numbers(cell), method
    assert all(m['methods'][k]['finetune'] is not None for k in methods)

def test_default_demo_is_a_point_of_the_sweep():
    import inspect
    sig = inspect.signature(run_demo).parameters
    assert {k: sig[k].default for k in POINT} == POINT                   # the default demo is the sweep's point:
    assert (sig['epochs'].default, sig['seed'].default) == (BUDGETS[0], 0)  # its settings, at its shortest budget, seed 0

@pytest.mark.parametrize('kw, words', [
    (dict(methods=('random', 'mae')), 'methods'), (dict(epochs=0), 'epochs'), (dict(n_parts=1), 'n_parts'),
    (dict(methods=('random', 'random')), 'without repeats'), (dict(amt_throw='high'), 'throw must be one of'),
    (dict(epochs=5, amt_start_epoch=40), 'amt_start_epoch <= 4'), (dict(epochs=30, refresh_every=40), 'refresh_every <= 27'),
    (dict(amt_throw_ratio=0.7), 'mask_ratio + throw_ratio'), (dict(device='cuda:99'), 'cuda'), (dict(device='gpu'), 'device')])
def test_demo_bad_input_before_any_work(tmp_path, kw, words):
    t = time.perf_counter()
    with pytest.raises(ValueError, match=words.replace('(', r'\(').replace('+', r'\+')): run_demo(tmp_path / 'a', **kw)
    assert time.perf_counter() - t < 10 and not (tmp_path / 'a').exists()   # refused at once; nothing written

def test_failed_demo_leaves_folder_reusable(tmp_path, monkeypatch):
    import semmae_edu.experiments as experiments
    def boom(*a, **k): raise RuntimeError('out of memory, say')
    monkeypatch.setattr(experiments, 'evaluate_model', boom)
    with pytest.raises(RuntimeError): run_demo(tmp_path / 'r', **{**TINY, 'methods': ('random',)})
    assert not (tmp_path / 'r').exists()                                  # nothing left behind: the same command works again
    (tmp_path / 'empty').mkdir()
    with pytest.raises(RuntimeError): run_demo(tmp_path / 'empty', **{**TINY, 'methods': ('random',)})
    assert (tmp_path / 'empty').is_dir() and not any((tmp_path / 'empty').iterdir())

@pytest.mark.slow
def test_cli_demo(tmp_path):
    from semmae_edu import cli
    args = ['demo', '--out', str(tmp_path / 'r'), '--methods', 'random', '--n-train', '64', '--n-test', '20', '--epochs', '2',
            '--batch-size', '32', '--n-finetune', '64', '--finetune-epochs', '1', '--finetune-from', '1', '--no-progress']
    assert cli.main(args) == 0 and (tmp_path / 'r' / 'report.html').is_file()
    assert cli.main(args) == 2                       # the folder is not empty now
    assert cli.main(args + ['--overwrite']) == 0
    assert cli.main(['demo', '--methods', 'random,blocks', '--out', str(tmp_path / 'x')]) == 2 and not (tmp_path / 'x').exists()

def test_cli_demo_help_lists_choices(capsys):
    from semmae_edu import cli
    assert cli.main(['demo', '--help']) == 0
    assert '{low,middle}' in capsys.readouterr().out

def test_finetune_epochs_that_cannot_take_effect_are_refused(tmp_path):
    "No silent no-op: the methods are fine-tuned at budgets >= finetune_from, so a changed recipe below it is refused."
    with pytest.raises(ValueError, match='cannot take effect'):
        run_demo(tmp_path / 'demo', epochs=2, finetune_epochs=5, progress=False)
    assert not (tmp_path / 'demo').exists()                              # refused before any work
