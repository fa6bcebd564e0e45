"""torch.distributed on the CPU (gloo): two processes launched by torchrun compute the same steps as one
process with the same global batch (nbs/07_train.ipynb, "Several processes")."""
import os, subprocess, sys, time
from pathlib import Path
import pytest, torch
from semmae_edu.train import pretrain
from semmae_edu.config import PretrainConfig
from semmae_edu.checkpoint import read_metrics, read_checkpoint

ROOT = Path(__file__).resolve().parents[1]

@pytest.mark.parametrize('strategy', ['random', pytest.param('hpm', marks=pytest.mark.slow)])
def test_two_gloo_processes_equal_one_process(tmp_path, strategy):
    "HPM too: its head is DDP-wrapped beside the MAE, its teacher follows the same averaged student on every rank."
    # global batch 8 = 2 processes x micro-batch 4, or 1 process x micro-batch 4 x accum_iter 2 (derived from eff_batch_size)
    common = dict(n_synthetic=32, batch_size=4, eff_batch_size=8, epochs=2, warmup_epochs=1, seed=1, strategy=strategy)
    # CPU + gloo even on a GPU machine: the children see no GPU and are told --device cpu (init_distributed then picks gloo)
    env = {**os.environ, 'PYTHONPATH': str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''), 'OMP_NUM_THREADS': '1',
           'CUDA_VISIBLE_DEVICES': ''}
    t = time.time()
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                        '-m', 'semmae_edu.cli', 'pretrain', '--n-synthetic', '32', '--batch-size', '4', '--eff-batch-size', '8',
                        '--epochs', '2', '--warmup-epochs', '1', '--seed', '1', '--device', 'cpu', '--no-progress', '--out', str(tmp_path / 'two'),
                        '--strategy', strategy],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    print(f"torchrun, 2 processes: {time.time() - t:.1f}s")
    n = torch.get_num_threads(); torch.set_num_threads(1)
    try: one = pretrain(PretrainConfig(**common, device='cpu', progress=False, out=str(tmp_path / 'one')))
    finally: torch.set_num_threads(n)

    two_recs = [x for x in read_metrics(tmp_path / 'two') if x['kind'] == 'step']
    one_recs = [x for x in read_metrics(tmp_path / 'one') if x['kind'] == 'step']
    assert [x['global_step'] for x in two_recs] == list(range(1, 9)), "rank 0 alone writes the log, once per step"
    assert [x['lr'] for x in two_recs] == [x['lr'] for x in one_recs]
    # Bit for bit, by the arithmetic: every micro-batch is the same computation on one CPU thread; the gradient average
    # over 2 processes (each halved, then summed) and the accumulation of 2 micro-batches (each loss halved, summed)
    # divide by 2, which is exact in floating point, and add two terms, which is commutative. The logged loss alike.
    assert [x['loss'] for x in two_recs] == [x['loss'] for x in one_recs]
    assert [x.get('loss_aux') for x in two_recs] == [x.get('loss_aux') for x in one_recs]   # HPM's relative loss alike (None otherwise)
    ck = read_checkpoint(tmp_path / 'two')
    assert ck['batch'] == dict(batch_size=4, accum_iter=1, world_size=2, eff_batch_size=8, lr=ck['batch']['lr'])
    sd = one.model.state_dict()
    for k, v in ck['model'].items(): assert torch.equal(v, sd[k]), k
    if strategy == 'hpm':                                         # predictor and teacher, as rank 0 saved them
        head = one.strategy.head.state_dict()
        for k, v in ck['strategy']['state']['head'].items(): assert torch.equal(v, head[k]), k
    assert sorted(p.name for p in (tmp_path / 'two').iterdir()) == ['checkpoint.pth', 'config.json', 'metrics.jsonl', 'model.pth']
