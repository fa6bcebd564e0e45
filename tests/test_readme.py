"README.md is generated from nbs/index.ipynb; its test line is the one CI runs."
import re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'tools'))
from make_readme import readme

def test_readme_matches_index():
    assert (ROOT/'README.md').read_text(encoding='utf-8') == readme()

def test_readme_has_one_line_test_command():
    lines = [l for l in (ROOT/'README.md').read_text().splitlines()
             if re.match(r'^python3 -m venv \.venv && .*pip install .*nbdev_test.*pytest', l)]
    assert len(lines) == 1, lines
