#!/usr/bin/env bash
# The docs in CI: Chromium (only if missing), the offline site (_docs/), its test in the browser.
# The build re-runs every notebook's fast cells (about 4-5 minutes on 2 CPU cores; `#| slow`/`#| gpu`
# cells keep their stored outputs), so the figures and explorers on the site come from the current code.
# Run from anywhere with the project's venv active (it needs the dev requirements: nbdev, playwright).
#   bash tools/ci_docs.sh
# Set CHROMIUM=/path/to/chrome to use another Chromium/Chrome (e.g. google-chrome on GitHub runners).
set -euo pipefail
cd "$(dirname "$0")/.."
export MPLBACKEND=Agg PYTHONUNBUFFERED=1
export SEMMAE_DOCS_REQUIRED=1   # here a missing site, Playwright or Chromium is a failure, not a skip
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

if [ ! -x "$CHROMIUM" ]; then
  echo "no Chromium at $CHROMIUM: installing Debian's chromium with apt"
  SUDO=""; if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    chromium fonts-liberation fonts-dejavu-core >/dev/null
  export CHROMIUM=/usr/bin/chromium
fi
python -c "import playwright" 2>/dev/null \
  || { echo "Playwright is not installed: it is a dev requirement (pip install -e '.[dev]')"; exit 1; }

t0=$(date +%s.%N)
python tools/build_docs.py
t1=$(date +%s.%N)
python -m pytest -q tests/test_docs_site.py
t2=$(date +%s.%N)
python - "$t0" "$t1" "$t2" <<'PY'
import sys
from pathlib import Path
t0, t1, t2 = map(float, sys.argv[1:])
site = Path('_docs')
mb = sum(f.stat().st_size for f in site.rglob('*') if f.is_file()) / 2**20
pages = len(list(site.glob('*.html')))
print(f'docs: build {t1-t0:.1f} s, browser test {t2-t1:.1f} s, {pages} pages, site size {mb:.2f} MB')
PY
