"The demo end to end at a tiny budget: every report file, every method's numbers, refusal of a non-empty folder."
import json, math
import pytest
import torch

pytest.importorskip('semmae_edu.train', reason='the demo pre-trains with semmae_edu.train (07_train)')
from semmae_edu.demo import run_demo, demo_command, METHODS, DEFAULT_METHODS

THREADS = 1   # one intra-op thread (tests/conftest.py)
TINY = dict(n_train=96, n_test=40, epochs=2, batch_size=32, amt_start_epoch=1, refresh_every=1, part_steps=10, probe_epochs=10, n_pictures=3, progress=False)

def test_demo_tiny_report(tmp_path):
    out = tmp_path / 'report'
    m = run_demo(out, **TINY)
    for f in ('report.md', 'report.html', 'metrics.json', 'figures/losses.png', 'figures/masks.png', 'figures/reconstructions.png',
              'figures/attention.png', 'figures/parts.png'):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    saved = json.loads((out / 'metrics.json').read_text())
    assert saved['methods'].keys() == m['methods'].keys()
    names = list(saved['methods'])   # random, amt, semmae (learned parts), then the two baselines
    assert names == list(DEFAULT_METHODS) + ['untrained (baseline)', 'raw pixels (baseline)']
    parts = saved['parts']           # SemMAE's stage 1 ran in the same demo and was scored against the true parts
    assert parts['K'] == 6 and all(0. <= parts[k] <= 1. for k in ('miou', 'kmeans_miou', 'grid_miou', 'nmi'))
    assert saved['methods']['semmae']['part_miou'] == parts['miou'] and saved['methods']['random']['part_miou'] is None
    for name, r in saved['methods'].items():
        for k in ('probe_cls', 'probe_mean', 'knn') + (('attention_mass', 'attention_iou', 'attention_chance') if 'pixels' not in name else ()):
            assert 0. <= r[k] <= 1., (name, k, r[k])
        if 'baseline' not in name: assert r['pretrain_seconds'] > 0 and r['images_per_s'] > 0 and math.isfinite(r['final_loss'])
    for name in names[:-2]: assert len(saved['losses'][name]) == 2 * 3   # 2 epochs of 96 // 32 steps
    page = (out / 'report.html').read_text()
    assert page.count('src="data:image/png;base64,') == 5 and 'http' not in page.replace('http-equiv', '')
    md = (out / 'report.md').read_text()
    assert all(f'| {n} |' in md for n in names) and '](figures/masks.png)' in md
    # an existing non-empty folder is refused; overwrite replaces the report
    with pytest.raises(FileExistsError, match='not empty'): run_demo(out, **TINY)
    assert demo_command(out=str(out), epochs=1) == 2
    assert demo_command(out=str(out), overwrite=True, methods='random', n_train=64, n_test=20, epochs=1, batch_size=32,
                        probe_epochs=2, progress=False) == 0
    assert list(json.loads((out / 'metrics.json').read_text())['methods']) == ['random', 'untrained (baseline)', 'raw pixels (baseline)']

def test_demo_bad_input(tmp_path):
    with pytest.raises(ValueError, match='methods'): run_demo(tmp_path / 'a', methods=('random', 'mae'))
    with pytest.raises(ValueError, match='epochs'): run_demo(tmp_path / 'b', epochs=0)
    with pytest.raises(ValueError, match='n_parts'): run_demo(tmp_path / 'c', n_parts=1)
    with pytest.raises(ValueError, match='without repeats'): run_demo(tmp_path / 'd', methods=('random', 'random'))
    (tmp_path / 'f').write_text('x')
    with pytest.raises(FileExistsError, match='not a folder'): run_demo(tmp_path / 'f')

def test_cli_demo(tmp_path):
    from semmae_edu import cli
    args = ['demo', '--out', str(tmp_path / 'r'), '--methods', 'random', '--n-train', '64', '--n-test', '20', '--epochs', '1',
            '--batch-size', '32', '--probe-epochs', '2', '--no-progress']
    assert cli.main(args) == 0 and (tmp_path / 'r' / 'report.html').is_file()
    assert cli.main(args) == 2                       # the folder is not empty now
    assert cli.main(args + ['--overwrite']) == 0
    assert cli.main(['demo', '--methods', 'random,blocks', '--out', str(tmp_path / 'x')]) == 2 and not (tmp_path / 'x').exists()
