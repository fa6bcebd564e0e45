"""The `semmae-edu` console script (nbs/11_cli.ipynb): help, a tiny run and its resume through a real
subprocess, bad input, and the exit status of a run whose loss stops being finite."""
import contextlib, io, os, re, subprocess, sys
from pathlib import Path
import pytest, torch
from semmae_edu import cli, train, batches
from semmae_edu.checkpoint import read_metrics, read_checkpoint

ROOT = Path(__file__).resolve().parents[1]

def run_cli(*args, timeout=120):
    env = {**os.environ, 'PYTHONPATH': str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''), 'OMP_NUM_THREADS': '1'}
    return subprocess.run([sys.executable, '-m', 'semmae_edu.cli', *args], env=env, capture_output=True, text=True, timeout=timeout)

def call(*args):
    "main() in this process: (exit status, stdout, stderr)."
    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e): rc = cli.main(list(args))
    return rc, o.getvalue(), e.getvalue()

def test_help():
    rc, out, _ = call('--help')
    assert rc == 0 and 'pretrain' in out and 'torchrun' in out
    rc, out, _ = call('pretrain', '--help')          # (the other tests run `python -m semmae_edu.cli` for real)
    assert rc == 0
    for opt in ('--strategy {random,amt,semmae,block,attmask,colormae,hpm}', '--colour {white,red,green,blue,purple}',
                '--hard-share', '--hard-schedule {linear,constant}', '--data {synthetic,synthetic-shared,cifar10,cifar100,stl10,tiny-imagenet,folder}', '--data-path',
                '--model', '--epochs', '--batch-size', '--accum-iter', '--blr', '--mask-ratio', '--out', '--resume',
                '--preset {cpu,cifar10,imagenet-vit-b}', 'PER DEVICE'):
        assert opt in out, opt
    assert call()[0] == 2 and call('--version')[0] == 0

@pytest.mark.slow
def test_tiny_run_then_resume_through_the_cli(tmp_path):
    out = tmp_path / 'run'
    args = ['pretrain', '--n-synthetic', '32', '--batch-size', '8', '--epochs', '2', '--device', 'cpu', '--no-progress', '--out', str(out)]
    r = run_cli(*args, '--epochs', '1')
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'done: epoch 1/1' in r.stdout and (out / 'model.pth').exists()
    assert len([x for x in read_metrics(out) if x['kind'] == 'step']) == 4
    # the recipe comes from the checkpoint; changing it is refused, changing the workers is not
    rc, _, err = call('pretrain', '--out', str(out), '--resume', '--blr', '0.1')
    assert rc == 2 and '--blr: 0.004 in the checkpoint, 0.1 now' in err
    rc, outp, err = call('pretrain', '--out', str(out), '--resume', '--workers', '0', '--no-progress')
    assert rc == 0 and 'nothing to do' in outp     # the run had finished
    assert read_checkpoint(out)['global_step'] == 4

def test_bad_input_is_refused_before_anything_is_written(tmp_path):
    out = str(tmp_path / 'run')
    cases = [(['--strategy', 'blocks'], "invalid choice: 'blocks'"),
             (['--data', 'imagenet'], "invalid choice: 'imagenet'"),
             (['--data', 'cifar10', '--data-path', str(tmp_path / 'nowhere')], 'does not exist'),
             (['--data', 'folder'], 'needs --data-path'),
             (['--batch-size', '48', '--eff-batch-size', '100'], '--eff-batch-size=100 is not a whole number'),
             (['--accum-iter', '3', '--eff-batch-size', '128'], '--accum-iter=3 contradicts --eff-batch-size=128'),
             (['--mask-ratio', '1.2'], '--mask-ratio must be in (0.0, 1.0)'),
             (['--strategy-kw', 'throw=0.4'], '--strategy-kw must be a JSON object'),
             (['--epochs', 'many'], "invalid int value: 'many'"),
             (['--resume'], 'no checkpoint at'),
             (['--strategy', 'colormae', '--colour', 'pink'], "invalid choice: 'pink'"),
             (['--strategy', 'colormae', '--strategy-kw', '{"colour": "pink"}'], "--colour must be one of"),
             (['--strategy', 'hpm', '--hard-share', '1.5'], '--hard-share (the share of the masked patches chosen as the predicted hardest) must be a number in [0, 1], got 1.5'),
             (['--strategy', 'hpm', '--strategy-kw', '{"schedule": "cosine"}'], "--hard-schedule must be one of ('linear', 'constant')"),
             (['--colour', 'red'], '--colour is an option of --strategy colormae'),
             (['--strategy', 'hpm', '--hard-share', '0.3', '--strategy-kw', '{"hard_share": 0.4}'], '--hard-share 0.3 disagrees with --strategy-kw')]
    for args, msg in cases:
        rc, _, err = call('pretrain', '--out', out, *args)
        assert rc == 2 and msg in err, (args, err)
        assert not any(f in err for f in ('data_path', 'eff_batch_size', 'accum_iter', 'mask_ratio', 'hard_share')), err   # flags, not Python names
        assert not re.search(r'(?<![-\w])(schedule|colour) must', err), err
        assert not os.path.exists(out), args
    rc, _, err = call('train')
    assert rc == 2 and "unknown command 'train'" in err

def test_nonfinite_loss_exits_3(tmp_path, monkeypatch):
    from semmae_edu.synthetic import SyntheticParts
    bad = int(batches.epoch_permutation(32, 0, 0)[16])          # an image of step 2 (0-based), seed 0
    class OneNaN(torch.utils.data.Dataset):
        def __init__(self): self.base = SyntheticParts(n=32, size=32, seed=0)
        def __len__(self): return 32
        def __getitem__(self, i):
            item = dict(self.base[i])
            if i == bad: item['image'] = item['image'] * float('nan')
            return item
    monkeypatch.setattr(train, 'build_data', lambda cfg: (OneNaN(), None, None))
    n = torch.get_num_threads(); torch.set_num_threads(1)
    try: rc, _, err = call('pretrain', '--n-synthetic', '32', '--batch-size', '8', '--epochs', '1', '--ckpt-every-steps', '1',
                           '--device', 'cpu', '--no-progress', '--out', str(tmp_path / 'nan'))
    finally: torch.set_num_threads(n)
    assert rc == 3 and 'stopped: the loss became nan at epoch 0, step 2' in err
    assert read_checkpoint(tmp_path / 'nan')['global_step'] == 2

def test_choices_from_literal_annotations_and_the_table():
    "A command declares its fixed sets of values with `Literal[...]` (or the CLI's CHOICES table); --help lists them, typos are refused."
    from typing import Literal
    def cmd(throw:Literal['low', 'middle']=None,   # which patches to throw
            k:Literal[1, 2, 4]=None,               # a number from a set
            name:str=None):                        # free text
        "A command."
    p = cli.command_parser(cmd, 'semmae-edu cmd', choices=dict(name=['a', 'b']))
    help_text = p.format_help()
    assert '--throw {low,middle}' in help_text and '--k {1,2,4}' in help_text and '--name {a,b}' in help_text
    assert p.parse_args(['--throw', 'middle', '--k', '4']).k == 4
    for bad in (['--throw', 'high'], ['--k', '3'], ['--name', 'c']):
        with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()): p.parse_args(bad)

def test_every_pretrain_setting_is_named_by_its_flag():
    "Each PretrainConfig setting the CLI exposes is translated to its option in error messages."
    options = {o for a in cli.command_parser(cli.pretrain)._actions for o in a.option_strings}
    for name, flag in cli.PRETRAIN_FLAGS.items():
        assert flag in options, flag
        msg = cli.flag_words(f"{name} must be positive; {name}=3 is not", cli.PRETRAIN_FLAGS)
        assert msg == f"{flag} must be positive; {flag}=3 is not", msg
    assert cli.PRETRAIN_FLAGS['num_workers'] == '--workers' and cli.PRETRAIN_FLAGS['data_path'] == '--data-path'
    prose = "unknown data set 'x'; the model and the epochs stay; semmae_edu.train.data_path"
    assert cli.flag_words(prose, cli.PRETRAIN_FLAGS) == prose      # plain words and dotted names are left alone

def test_new_strategies_run_from_the_command_line(tmp_path):
    "`pretrain --strategy colormae|hpm --epochs 3` on the embedded data: the options reach the strategy, the losses differ from random's."
    args = ['--n-synthetic', '32', '--batch-size', '8', '--epochs', '3', '--device', 'cpu', '--no-progress']
    n = torch.get_num_threads(); torch.set_num_threads(1)
    try:
        runs = {'random': [], 'colormae': ['--colour', 'red'], 'hpm': ['--hard-share', '0.4', '--hard-schedule', 'constant']}
        for name, extra in runs.items():
            rc, out, err = call('pretrain', '--strategy', name, *extra, *args, '--out', str(tmp_path / name))
            assert rc == 0 and 'done: epoch 3/3' in out, err
    finally: torch.set_num_threads(n)
    losses = {k: [r['loss'] for r in read_metrics(tmp_path / k) if r['kind'] == 'step'] for k in runs}
    assert len(losses['random']) == len(losses['colormae']) == len(losses['hpm']) == 12
    assert losses['colormae'] != losses['random'] and losses['hpm'] != losses['random']
    assert read_checkpoint(tmp_path / 'colormae')['config']['strategy_kw'] == {'colour': 'red'}
    state = read_checkpoint(tmp_path / 'hpm')['strategy']['state']
    assert state['share'] == 0.4                                     # 'constant': the share from the first epoch
    assert all('loss_aux' in r for r in read_metrics(tmp_path / 'hpm') if r['kind'] == 'step')

def test_until_epoch_runs_a_recipe_in_legs(tmp_path):
    "--until-epoch stops with a checkpoint and no model.pth; --resume finishes the same run; a stop that cannot happen is refused."
    out = str(tmp_path / 'legs')
    args = ['pretrain', '--n-synthetic', '16', '--batch-size', '8', '--epochs', '2', '--device', 'cpu', '--no-progress', '--out', out]
    rc, outp, err = call(*args, '--until-epoch', '1')
    assert rc == 0 and 'stopped as asked after epoch 1/2' in outp and '--resume' in outp, err
    assert read_checkpoint(out)['epoch'] == 1 and not (tmp_path / 'legs' / 'model.pth').exists()
    rc, _, err = call('pretrain', '--out', out, '--resume', '--until-epoch', '1', '--no-progress')
    assert rc == 2 and '--until-epoch=1 cannot take effect: the checkpoint is at epoch 1' in err
    rc, outp, _ = call('pretrain', '--out', out, '--resume', '--no-progress')
    assert rc == 0 and 'done: epoch 2/2' in outp and (tmp_path / 'legs' / 'model.pth').exists()
    rc, _, err = call(*args[:-1], str(tmp_path / 'other'), '--until-epoch', '3')
    assert rc == 2 and '--until-epoch must be an int in [1, --epochs=2]' in err and not (tmp_path / 'other').exists()
