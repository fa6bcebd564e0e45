"""Colab for real: a fresh virtual environment with only what a chapter's setup cell installs (the package with
its `[notebooks]` extra, from this checkout instead of git), then the chapter's fast cells run in it, as on Colab:
the setup cell takes its Colab branch, and the closing `nbdev_export` cell must not export outside a clone.

It builds a venv (torch is reused from the local pip cache: the version installed here is pinned), so it takes a
minute or two; `SEMMAE_COLAB_TEST=0` skips it."""
import json, os, re, shutil, subprocess, sys, textwrap, time
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / 'nbs' / '02a_viz.ipynb'      # imports show_doc, fastcore.test, matplotlib and ipywidgets (the live explorer)
SKIP = {'slow', 'gpu', 'notest'}              # settings.ini tst_flags: what nbdev_test skips too

pytestmark = pytest.mark.skipif(os.environ.get('SEMMAE_COLAB_TEST') == '0', reason='SEMMAE_COLAB_TEST=0')


def setup_cell(nb_path) -> str:
    nb = json.loads(Path(nb_path).read_text())
    return ''.join(next(c for c in nb['cells'] if c['cell_type'] == 'code')['source'])


def test_every_chapter_starts_with_the_same_visible_setup_cell():
    cells = {p.name: setup_cell(p) for p in sorted((ROOT / 'nbs').glob('[0-9]*.ipynb'))}
    assert len(cells) >= 10 and len(set(cells.values())) == 1, "every chapter's first code cell is the same"
    src = next(iter(cells.values()))
    assert not src.lstrip().startswith('#| hide'), 'the setup cell is shown in the docs: the first thing a reader copies'
    assert "'google.colab' in sys.modules" in src and 'semmae-edu[notebooks] @ git+' in src and 'DEVICE =' in src
    for p in sorted((ROOT / 'nbs').glob('[0-9]*.ipynb')):
        last = [c for c in json.loads(p.read_text())['cells'] if c['cell_type'] == 'code'][-1]
        assert "'settings.ini'" in ''.join(last['source']), f"{p.name}: nbdev_export runs only in a clone of the repository"


DRIVER = r'''
import json, subprocess, sys, types
from pathlib import Path
from execnb.nbio import read_nb
from execnb.shell import CaptureShell

nb_path, skip = Path(sys.argv[1]), set(sys.argv[2].split(','))
nb = read_nb(nb_path)
code = [c for c in nb.cells if c.cell_type == 'code']
flags = lambda c: {w for l in c.source.splitlines() if l.startswith('#|') for w in l[2:].replace(':', ' ').split()}
sh = CaptureShell(nb_path)
installs = []
# the setup cell, as on Colab: google.colab is imported there; the pip line is recorded (it would fetch from git)
sys.modules['google.colab'] = types.ModuleType('google.colab')
real_run = subprocess.run
subprocess.run = lambda args, **kw: installs.append(list(args)) or subprocess.CompletedProcess(args, 0)
try: sh.run(code[0].source)
finally: subprocess.run = real_run; del sys.modules['google.colab']
assert sh.exc is None, sh.prettytb()
ran = 1
for c in code[1:]:
    if flags(c) & skip: continue
    sh.run(c.source)
    if sh.exc is not None: print(sh.prettytb(), file=sys.stderr); sys.exit(1)
    ran += 1
print(json.dumps(dict(installs=installs, ran=ran, device=sh.user_ns['DEVICE'])))
'''


@pytest.mark.slow
def test_chapter_runs_with_only_what_the_setup_cell_installs(tmp_path):
    from importlib.metadata import version
    src = setup_cell(CHAPTER)
    m = re.search(r"'(semmae-edu\[notebooks\]) @ git\+\S+'", src)
    assert m, src
    venv = tmp_path / 'venv'
    t0 = time.time()
    subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True)   # no --system-site-packages: nothing hidden
    py = venv / 'bin' / 'python'
    # the cell's requirement with this checkout for git; torch/torchvision pinned to the versions here, so pip takes
    # them from its cache instead of downloading (Colab has its own torch: the package only asks for a range)
    pins = [f"torch=={version('torch')}", f"torchvision=={version('torchvision')}"]   # distribution versions (no +cu label)
    r = subprocess.run([str(py), '-m', 'pip', 'install', '-q', f"{m.group(1)} @ {ROOT.as_uri()}", *pins],
                       capture_output=True, text=True, timeout=1200, env={**os.environ, 'PIP_DISABLE_PIP_VERSION_CHECK': '1'})
    assert r.returncode == 0, r.stderr[-3000:]
    t1 = time.time()
    # the chapter alone in a folder with no settings.ini above it, as on Colab (Colab's /content has none)
    work = tmp_path / 'content'; work.mkdir()
    shutil.copy(CHAPTER, work / CHAPTER.name)
    driver = tmp_path / 'driver.py'; driver.write_text(DRIVER)
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
    env.update(OMP_NUM_THREADS='1', MPLBACKEND='Agg')
    r = subprocess.run([str(py), str(driver), str(work / CHAPTER.name), ','.join(SKIP)], cwd=work, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"venv + install {t1 - t0:.0f} s, {res['ran']} cells {time.time() - t1:.0f} s")
    assert res['installs'] and res['installs'][0][1:5] == ['-m', 'pip', 'install', '-q'], res
    assert any(a.startswith('semmae-edu[notebooks] @ git+') for a in res['installs'][0]), res
    assert res['ran'] > 10 and res['device'] in ('cpu', 'cuda')
    assert not (work / 'semmae_edu').exists() and not list(tmp_path.glob('content/**/_modidx.py')), 'nothing was exported'
    # the package came from the venv, not from this checkout on a path
    r = subprocess.run([str(py), '-c', 'import semmae_edu, nbdev, execnb; print(semmae_edu.__file__)'], env=env,
                       capture_output=True, text=True, cwd=work)
    assert r.returncode == 0 and str(venv) in r.stdout, r.stdout + r.stderr
