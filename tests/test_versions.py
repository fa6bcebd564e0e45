"""The supported versions are the proven ones: every lower bound in settings.ini (`requirements`, and the extras for timm) for the
libraries CI pins is exactly what `.ci/floor.txt` installs in CI's second environment (and .ci/run uses it)."""
import configparser, re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def floors_declared() -> dict:
    cfg = configparser.ConfigParser(delimiters=['=']); cfg.read(ROOT / 'settings.ini', encoding='utf-8')
    out = {}
    reqs = ' '.join(cfg['DEFAULT'].get(k, '') for k in ('requirements', 'notebooks_requirements', 'dev_requirements'))
    for req in reqs.split():
        m = re.match(r'([A-Za-z0-9_.\-]+)>=([0-9][^,<]*)', req)
        if m: out[m.group(1).lower()] = m.group(2)
    return out


def floors_installed() -> dict:
    pins = {}
    for line in (ROOT / '.ci' / 'floor.txt').read_text().splitlines():
        line = line.split('#')[0].strip()
        if line: name, v = line.split('=='); pins[name.strip().lower()] = v.strip()
    return pins


def _same(declared, pinned):   # '2.4' declares 2.4.0; '0.9.16' is 0.9.16
    norm = lambda v: [int(x) for x in v.split('.')] + [0] * (3 - len(v.split('.')))
    return norm(declared) == norm(pinned)


def test_ci_installs_exactly_the_declared_floors():
    declared, pinned = floors_declared(), floors_installed()
    for lib in ('torch', 'torchvision', 'timm', 'numpy', 'scipy', 'matplotlib'):
        assert lib in declared and lib in pinned, lib
        assert _same(declared[lib], pinned[lib]), f"{lib}: settings.ini says >={declared[lib]}, CI installs {pinned[lib]}"
    run = (ROOT / '.ci' / 'run').read_text()
    assert '-c .ci/floor.txt' in run and 'nbdev_test' in run.split('floor.txt', 1)[1], '.ci/run tests the floor environment'


def test_notebooks_extra_has_what_a_chapter_imports():
    cfg = configparser.ConfigParser(delimiters=['=']); cfg.read(ROOT / 'settings.ini', encoding='utf-8')
    extra = cfg['DEFAULT']['notebooks_requirements']
    assert 'nbdev' in extra and 'execnb' in extra and 'timm' in extra   # 01_vit compares with timm
    assert 'ipywidgets' in extra and 'ipywidgets' in cfg['DEFAULT']['dev_requirements']   # viz.live_explorer, in a running notebook
    assert 'ipywidgets' not in cfg['DEFAULT']['requirements'], 'the library itself never imports ipywidgets'
    assert "'notebooks': notebooks_requirements" in (ROOT / 'setup.py').read_text()
