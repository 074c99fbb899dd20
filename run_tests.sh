#!/usr/bin/env bash
# The one test command: prepares a fresh machine, then runs pytest over tests/.
#   ./run_tests.sh                 the whole suite
#   ./run_tests.sh -k start_app -q extra arguments go to pytest unchanged
# Exits with pytest's status (or 3 when the venv install fails).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

# The venv with the dev requirements and the Ray extra (the scale-out tests start local Ray
# instances), through the launcher's own install code (skipped while requirements*.txt are unchanged).
./start_app.sh install --dev --with-ray

# Debian packages the tests use: chromium for the browser tests (never `playwright install`),
# the shellcheck binary for the launcher lint test, a CJK font so zh screenshots show text, and
# alsa-utils for its real-voice recordings (/usr/share/sounds/alsa), the quick voice's test references.
# One `apt-get update`, then one install.
missing=()
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
command -v shellcheck >/dev/null || missing+=(shellcheck)
[[ -e /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ]] || missing+=(fonts-wqy-zenhei)
[[ -e /usr/share/sounds/alsa/Front_Center.wav ]] || missing+=(alsa-utils)
if [[ ${#missing[@]} -gt 0 ]]; then
    if command -v apt-get >/dev/null; then
        sudo_cmd=()
        if [[ $(id -u) != 0 ]] && command -v sudo >/dev/null; then
            sudo_cmd=(sudo)
        fi
        echo "run_tests.sh: installing ${missing[*]} with apt-get"
        if ! { "${sudo_cmd[@]}" apt-get update &&
            DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y "${missing[@]}"; }; then
            echo "run_tests.sh: could not install ${missing[*]}; the tests that need them will fail" >&2
        fi
    else
        echo "run_tests.sh: no apt-get to install ${missing[*]}; the tests that need them will fail" >&2
    fi
fi

# No path arguments -> pytest.ini's testpaths (tests/).
exec "${INDEX_TTS_VENV:-$ROOT/.venv}/bin/python" -m pytest "$@"
