#!/usr/bin/env bash
# One-click launcher for IndexTTS Studio (webui.py).
#
# It prepares the virtual environment, replaces a previous instance that it started itself,
# refuses to touch a port held by someone else, starts the server detached and waits until
# /healthz answers. Run `./start_app.sh --help` for commands, options and exit codes;
# docs/deployment.md explains the same in more words.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

# Exit codes (keep in sync with usage() and docs/deployment.md).
readonly EXIT_OK=0
readonly EXIT_DIED=1          # the server exited while starting
readonly EXIT_USAGE=2         # unknown command or bad option value
readonly EXIT_INSTALL=3       # python3 / venv / pip failed
readonly EXIT_PORT_BUSY=4     # the port is held by a process that is not ours
readonly EXIT_TIMEOUT=5       # /healthz did not answer within --timeout (the server is stopped)
readonly EXIT_STOP_FAILED=6   # our process survived SIGTERM and SIGKILL
readonly EXIT_NOT_RUNNING=7   # status: no instance of ours is running
readonly EXIT_UNHEALTHY=8     # status: our process runs but /healthz does not answer
# A failed model download is not an exit code: the app starts anyway (quick voice, with a banner
# naming what is missing and the command that fetches it).

HOST="${INDEX_TTS_HOST:-127.0.0.1}"
PORT="${INDEX_TTS_PORT:-7860}"
ENGINE="${INDEX_TTS_ENGINE:-auto}"
MODEL="${INDEX_TTS_MODEL:-2}"
TIMEOUT="${INDEX_TTS_TIMEOUT:-120}"
NO_INSTALL="${INDEX_TTS_NO_INSTALL:-0}"
RUN_DIR="${INDEX_TTS_RUN_DIR:-$ROOT/run}"
LOG_DIR="${INDEX_TTS_LOG_DIR:-$ROOT/logs}"
VENV="${INDEX_TTS_VENV:-$ROOT/.venv}"
BASE_PYTHON="${INDEX_TTS_PYTHON:-python3}"
WEBUI="${INDEX_TTS_WEBUI:-$ROOT/webui.py}"
# Extra pip arguments, e.g. "--extra-index-url https://download.pytorch.org/whl/cpu" off this network.
PIP_ARGS="${INDEX_TTS_PIP_ARGS:-}"
AUTH_TOKEN="${INDEX_TTS_TOKEN:-}"
NO_DOWNLOAD="${INDEX_TTS_NO_DOWNLOAD:-0}"
CACHE_HUB="${INDEX_TTS_CACHE_HUB:-}"
REVISION="${INDEX_TTS_REVISION:-}"

LOG_MAX_BYTES=$((10 * 1024 * 1024))
STOP_GRACE_SECONDS=10

usage() {
    cat <<EOF
Usage: ./start_app.sh [COMMAND] [OPTIONS] [-- WEBUI_OPTIONS]

Commands:
  start            (default) install if needed, replace our previous instance, start detached,
                   wait for /healthz, print the URL and the engine state from /readyz
  stop             stop our instance (SIGTERM, up to ${STOP_GRACE_SECONDS} s, then SIGKILL)
  restart          stop, then start
  status           say whether our instance runs and answers /healthz and /readyz
  logs [-f] [-n N] print the last N (100) lines of the server log; -f follows it
  install [--dev] [--with-ray]
                   only create .venv and install requirements.txt (--dev: requirements-dev.txt;
                   --with-ray: also requirements-ray.txt, the Ray extra of docs/scale-out.md)

Options (environment variable in brackets):
  --host HOST      bind address, default 127.0.0.1          [INDEX_TTS_HOST]
                   Exposing the app needs --host 0.0.0.0 --auth-token TOKEN.
  --port PORT      TCP port, default 7860                    [INDEX_TTS_PORT]
  --model M        2 | 2.5 | both, default 2 (IndexTTS2)   [INDEX_TTS_MODEL]
                   both: IndexTTS2 is the default, IndexTTS-2.5 loads on its first request
  --engine NAME    auto | quick | indextts2, default auto   [INDEX_TTS_ENGINE]
  --timeout SEC    seconds to wait for /healthz, default 120 [INDEX_TTS_TIMEOUT]
  --no-install     skip the venv/requirements check          [INDEX_TTS_NO_INSTALL=1]
  --no-download    do not fetch missing weights              [INDEX_TTS_NO_DOWNLOAD=1]
                   (by default a start runs "python -m index_tts download --if-missing --model M"
                   unless --engine quick; it uses no network when every file is present)
  --cache-hub DIR  the model store, default ./cache_hub      [INDEX_TTS_CACHE_HUB]
  --revision REV   IndexTeam/IndexTTS-2 revision, default main [INDEX_TTS_REVISION]
  --auth-token T   token required on every route but /healthz [INDEX_TTS_TOKEN]
                   (given to webui.py in the environment, not argv)
  -h, --help       show this help
  Any other option (e.g. --model-dir D, --data-dir D, --history-max-entries N,
  --history-max-gb GB) is passed to webui.py unchanged.

Other environment:
  INDEX_TTS_RUN_DIR   pid file folder, default ./run  (pid file: webui.pid)
  INDEX_TTS_LOG_DIR   log folder, default ./logs      (log: webui.log, rotated to webui.log.1 at 10 MB)
  INDEX_TTS_VENV      virtual environment, default ./.venv
  INDEX_TTS_PYTHON    interpreter used to create the venv, default python3 (3.11 or newer)
  INDEX_TTS_PIP_ARGS  extra arguments for pip install
  INDEX_TTS_WEBUI     the app script, default ./webui.py

Exit codes:
  0  success (status: running and healthy)
  1  the server exited while starting (the log tail is printed)
  2  usage error: unknown command or bad option value
  3  install failed (python3, venv or pip)
  4  the port is held by a process that is not ours (try --port)
  5  /healthz did not answer within --timeout; the server was stopped
  6  our process did not exit even after SIGKILL
  7  status: not running
  8  status: our process runs but /healthz does not answer
EOF
}

say() { printf '%s\n' "$*"; }
warn() { printf 'start_app.sh: %s\n' "$*" >&2; }
die() {
    local code=$1
    shift
    warn "$*"
    exit "$code"
}

# ---------------------------------------------------------------- argument parsing

COMMAND=start
case "${1:-}" in
    start | stop | restart | status | logs | install)
        COMMAND=$1
        shift
        ;;
    -* | "") ;;
    *)
        die "$EXIT_USAGE" "unknown command '$1' (see --help)"
        ;;
esac

PASSTHROUGH=()
INSTALL_DEV=0
INSTALL_RAY=0
FOLLOW=0
LOG_LINES=100

need_value() {
    # $1 option name, $2 number of remaining arguments
    [[ $2 -ge 2 ]] || die "$EXIT_USAGE" "option $1 needs a value (see --help)"
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        -h | --help)
            usage
            exit "$EXIT_OK"
            ;;
        --host) need_value "$1" $# && HOST=$2 && shift ;;
        --host=*) HOST=${1#*=} ;;
        --port) need_value "$1" $# && PORT=$2 && shift ;;
        --port=*) PORT=${1#*=} ;;
        --engine) need_value "$1" $# && ENGINE=$2 && shift ;;
        --model) need_value "$1" $# && MODEL=$2 && shift ;;
        --model=*) MODEL=${1#*=} ;;
        --engine=*) ENGINE=${1#*=} ;;
        --timeout) need_value "$1" $# && TIMEOUT=$2 && shift ;;
        --timeout=*) TIMEOUT=${1#*=} ;;
        --auth-token) need_value "$1" $# && AUTH_TOKEN=$2 && shift ;;
        --auth-token=*) AUTH_TOKEN=${1#*=} ;;
        --no-install) NO_INSTALL=1 ;;
        --no-download) NO_DOWNLOAD=1 ;;
        --cache-hub) need_value "$1" $# && CACHE_HUB=$2 && shift ;;
        --cache-hub=*) CACHE_HUB=${1#*=} ;;
        --revision) need_value "$1" $# && REVISION=$2 && shift ;;
        --revision=*) REVISION=${1#*=} ;;
        --dev) INSTALL_DEV=1 ;;
        --with-ray) INSTALL_RAY=1 ;;
        -f | --follow) FOLLOW=1 ;;
        -n) need_value "$1" $# && LOG_LINES=$2 && shift ;;
        --)
            shift
            PASSTHROUGH+=("$@")
            break
            ;;
        *) PASSTHROUGH+=("$1") ;;
    esac
    shift
done

if ! [[ $PORT =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65535)); then
    die "$EXIT_USAGE" "--port must be 1-65535, got '$PORT'"
fi
[[ $TIMEOUT =~ ^[0-9]+$ ]] || die "$EXIT_USAGE" "--timeout must be whole seconds, got '$TIMEOUT'"
[[ $LOG_LINES =~ ^[0-9]+$ ]] || die "$EXIT_USAGE" "-n must be a number, got '$LOG_LINES'"
case "$NO_INSTALL" in
    "" | 0 | false | no) NO_INSTALL=0 ;;
    *) NO_INSTALL=1 ;;
esac
case "$NO_DOWNLOAD" in
    "" | 0 | false | no) NO_DOWNLOAD=0 ;;
    *) NO_DOWNLOAD=1 ;;
esac
# The model store and revision reach webui.py through the environment (like the token).
if [[ -n $CACHE_HUB ]]; then export INDEX_TTS_CACHE_HUB="$CACHE_HUB"; fi
if [[ -n $REVISION ]]; then export INDEX_TTS_REVISION="$REVISION"; fi
# So is the model choice; webui.py validates it (like the engine name, below).
export INDEX_TTS_MODEL="$MODEL"
# The engine name is deliberately not validated here: webui.py owns that list, and an
# invalid name makes it exit, which the health wait reports with the log tail.

PID_FILE="$RUN_DIR/webui.pid"
LOG_FILE="$LOG_DIR/webui.log"
PY="$VENV/bin/python"

# ---------------------------------------------------------------- virtual environment

file_hash() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }

install_venv() {
    # $1 = 1 for the dev requirements, $2 = 1 for the Ray extra (requirements-ray.txt). The stamp
    # holds the hash of the requirement files, so a later run skips pip while they are unchanged.
    local dev=$1 ray=${2:-0} stamp want
    local reqs=("$ROOT/requirements.txt") hashed=("$ROOT/requirements.txt") name=requirements
    if [[ $dev == 1 ]]; then
        reqs=("$ROOT/requirements-dev.txt") # it includes requirements.txt
        hashed+=("$ROOT/requirements-dev.txt")
        name=requirements-dev
    fi
    if [[ $ray == 1 ]]; then
        reqs+=("$ROOT/requirements-ray.txt")
        hashed+=("$ROOT/requirements-ray.txt")
        name=$name+ray
    fi
    stamp="$VENV/.$name.sha256"
    want=$(file_hash "${hashed[@]}")

    if [[ ! -x $PY ]]; then
        command -v "$BASE_PYTHON" >/dev/null || die "$EXIT_INSTALL" "$BASE_PYTHON not found; install Python 3.11 or set INDEX_TTS_PYTHON"
        "$BASE_PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
            die "$EXIT_INSTALL" "$BASE_PYTHON is older than 3.11 (the pins need 3.11); set INDEX_TTS_PYTHON"
        say "Creating virtual environment in $VENV"
        "$BASE_PYTHON" -m venv "$VENV" || die "$EXIT_INSTALL" "could not create $VENV (Debian: apt-get install python3-venv)"
    fi

    if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
        return 0
    fi
    local pip_reqs=() req
    for req in "${reqs[@]}"; do pip_reqs+=(-r "$req"); done
    say "Installing ${name//+/ and } into $VENV (first run or changed requirements)"
    # PIP_ARGS is a list of words on purpose.
    # shellcheck disable=SC2086
    "$PY" -m pip install --disable-pip-version-check $PIP_ARGS "${pip_reqs[@]}" ||
        die "$EXIT_INSTALL" "pip install ${pip_reqs[*]} failed; see the output above"
    printf '%s\n' "$want" >"$stamp"
}

ensure_venv() {
    if [[ $NO_INSTALL == 1 ]]; then
        [[ -x $PY ]] || die "$EXIT_INSTALL" "--no-install given but $PY does not exist; run ./start_app.sh install"
        return 0
    fi
    # Serving on Ray (`-- --ray ADDRESS`) needs the Ray extra.
    local arg ray=$INSTALL_RAY
    for arg in "${PASSTHROUGH[@]}"; do
        [[ $arg == --ray || $arg == --ray=* ]] && ray=1
    done
    install_venv 0 "$ray"
}

# ---------------------------------------------------------------- process bookkeeping

# Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat). The command
# name in field 2 may contain spaces and parentheses, so cut after the last ')'.
proc_start_time() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    # shellcheck disable=SC2086  # split the remaining fields on purpose
    set -- $stat
    # After the cut, field 3 (state) is $1, so field 22 is $20.
    printf '%s\n' "${20}"
}

# Alive and not a zombie (a dead child we have not reaped still has a /proc entry).
pid_alive() {
    local stat
    [[ -n ${1:-} ]] || return 1
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}

proc_cmdline() { tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null; }

# Ours = its argv[1] is our webui.py (argv[0] is the venv python).
is_our_webui() {
    local arg1
    arg1=$(tr '\0' '\n' <"/proc/$1/cmdline" 2>/dev/null | sed -n 2p) || return 1
    [[ $arg1 == "$WEBUI" ]]
}

PF_PID="" PF_START="" PF_HOST="" PF_PORT=""
read_pid_file() {
    PF_PID="" PF_START="" PF_HOST="" PF_PORT=""
    [[ -f $PID_FILE ]] || return 1
    local key value
    while IFS='=' read -r key value; do
        case "$key" in
            pid) PF_PID=$value ;;
            start_time) PF_START=$value ;;
            host) PF_HOST=$value ;;
            port) PF_PORT=$value ;;
        esac
    done <"$PID_FILE"
    [[ $PF_PID =~ ^[0-9]+$ ]]
}

write_pid_file() {
    # $1 pid, $2 start time. Written to a temp file and renamed so readers never see half a file.
    mkdir -p "$RUN_DIR"
    printf 'pid=%s\nstart_time=%s\nhost=%s\nport=%s\nengine=%s\n' "$1" "$2" "$HOST" "$PORT" "$ENGINE" >"$PID_FILE.tmp"
    mv -f "$PID_FILE.tmp" "$PID_FILE"
}

# Succeeds when the pid file names a live process that is the very process we started
# (same start time, so a recycled pid does not count) running our webui.py.
# A pid file that fails this check is stale and is removed.
our_instance() {
    if ! read_pid_file; then
        [[ -f $PID_FILE ]] && rm -f "$PID_FILE"
        return 1
    fi
    if pid_alive "$PF_PID" && [[ "$(proc_start_time "$PF_PID")" == "$PF_START" ]] && is_our_webui "$PF_PID"; then
        return 0
    fi
    say "Removing stale pid file (pid $PF_PID is gone or is not our webui.py)"
    rm -f "$PID_FILE"
    return 1
}

# Graceful stop of a pid we own: SIGTERM, wait, then SIGKILL.
stop_pid() {
    local pid=$1 waited=0
    kill -TERM "$pid" 2>/dev/null || true
    while pid_alive "$pid" && ((waited < STOP_GRACE_SECONDS * 10)); do
        sleep 0.1
        waited=$((waited + 1))
    done
    if pid_alive "$pid"; then
        warn "pid $pid ignored SIGTERM for ${STOP_GRACE_SECONDS} s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        waited=0
        while pid_alive "$pid" && ((waited < 50)); do
            sleep 0.1
            waited=$((waited + 1))
        done
    fi
    ! pid_alive "$pid"
}

stop_instance() {
    if our_instance; then
        say "Stopping webui.py (pid $PF_PID)"
        stop_pid "$PF_PID" || die "$EXIT_STOP_FAILED" "pid $PF_PID is still alive after SIGKILL"
        rm -f "$PID_FILE"
        return 0
    fi
    return 1
}

# ---------------------------------------------------------------- port and HTTP

# Prints "PID" of the process listening on TCP port $1, "?" when something listens but its
# owner cannot be seen, nothing when the port is free.
port_owner() {
    local port=$1 out pid
    if command -v ss >/dev/null; then
        out=$(ss -Hltnp "sport = :$port" 2>/dev/null) || out=""
        if [[ -n $out ]]; then
            pid=$(grep -o 'pid=[0-9]*' <<<"$out" | head -n 1 | cut -d= -f2)
            printf '%s\n' "${pid:-?}"
        fi
        return 0
    fi
    if command -v lsof >/dev/null; then
        pid=$(lsof -nP -t -iTCP:"$port" -sTCP:LISTEN 2>/dev/null | head -n 1) || pid=""
        [[ -n $pid ]] && printf '%s\n' "$pid"
        return 0
    fi
    # Last resort: can we connect at all?
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        printf '?\n'
    fi
}

# Where to reach the server from this machine: a wildcard bind is reached on loopback.
probe_host() {
    case "$1" in
        0.0.0.0 | "" | "*") printf '127.0.0.1' ;;
        :: | "[::]") printf '[::1]' ;;
        *:*)
            local h=${1#[}
            printf '[%s]' "${h%]}"
            ;;
        *) printf '%s' "$1" ;;
    esac
}

# http_get URL -> prints "CODE BODY"; CODE is 000 when nothing answered.
http_get() {
    local url=$1
    if command -v curl >/dev/null; then
        local tmp code
        tmp=$(mktemp)
        # The header comes from a file descriptor so that the token never shows up in `ps`.
        code=$(curl -s -o "$tmp" -w '%{http_code}' --max-time 3 \
            -H @<(if [[ -n $AUTH_TOKEN ]]; then printf 'Authorization: Bearer %s\n' "$AUTH_TOKEN"; fi) \
            "$url" 2>/dev/null) || true
        printf '%s %s\n' "${code:-000}" "$(head -c 2000 "$tmp")"
        rm -f "$tmp"
    else
        PROBE_TOKEN="$AUTH_TOKEN" "$PY" - "$url" <<'PYEOF'
import os, sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1])
if os.environ.get("PROBE_TOKEN"):
    req.add_header("Authorization", "Bearer " + os.environ["PROBE_TOKEN"])
try:
    with urllib.request.urlopen(req, timeout=3) as r:
        print(r.status, r.read(2000).decode("utf-8", "replace"))
except urllib.error.HTTPError as e:
    print(e.code, e.read(2000).decode("utf-8", "replace"))
except Exception:
    print("000")
PYEOF
    fi
}

# ---------------------------------------------------------------- logs

rotate_log() {
    mkdir -p "$LOG_DIR"
    if [[ -f $LOG_FILE ]] && (($(stat -c %s "$LOG_FILE") > LOG_MAX_BYTES)); then
        mv -f "$LOG_FILE" "$LOG_FILE.1"
    fi
    touch "$LOG_FILE"
}

# The last 40 lines this start wrote (from byte offset $1 on).
show_log_tail() {
    local offset=$1
    say "---- last 40 lines of $LOG_FILE ----"
    tail -c +"$((offset + 1))" "$LOG_FILE" | tail -n 40
    say "---- end of log ----"
}

# ---------------------------------------------------------------- model weights

# First start: fetch what the model store lacks. Nothing to do (and no network) when every file
# is present; a failure (offline, proxy, disk) is reported and the app starts anyway.
fetch_weights() {
    if [[ $NO_DOWNLOAD == 1 || ($ENGINE == quick && $MODEL == 2) ]]; then
        return 0
    fi
    say "Checking the weights (--model $MODEL) in ${INDEX_TTS_CACHE_HUB:-$ROOT/cache_hub} (skip with --no-download)"
    if ! "$PY" -m index_tts download --if-missing --model "$MODEL"; then
        warn "could not fetch the weights (see above); starting anyway."
        warn "until you run $PY -m index_tts download --model $MODEL, IndexTTS2 is the quick voice and IndexTTS-2.5 is unavailable"
    fi
}

# ---------------------------------------------------------------- commands

cmd_start() {
    ensure_venv
    [[ -f $WEBUI ]] || die "$EXIT_USAGE" "$WEBUI not found"
    fetch_weights

    # 1. Our previous instance (same pid, same start time, our webui.py): replace it.
    if our_instance; then
        say "An earlier instance is running (pid $PF_PID); replacing it"
        stop_instance || true
    fi

    # 2. Someone else on the port: leave it alone and explain.
    local owner
    owner=$(port_owner "$PORT")
    if [[ -n $owner ]]; then
        if [[ $owner == "?" ]]; then
            warn "port $PORT is already in use by a process this user cannot see"
        else
            warn "port $PORT is already in use by pid $owner: $(proc_cmdline "$owner" || printf 'unknown command')"
        fi
        warn "it was not started by this launcher (run dir $RUN_DIR), so it is left alone."
        die "$EXIT_PORT_BUSY" "hint: stop that process or choose another port, e.g. ./start_app.sh --port $((PORT + 1))"
    fi

    # 3. Launch detached: own session (setsid), immune to hangups (nohup), no terminal.
    rotate_log
    local offset pid start_time
    offset=$(stat -c %s "$LOG_FILE")
    printf '==== %s start_app.sh: webui.py --host %s --port %s --engine %s %s\n' \
        "$(date '+%Y-%m-%d %H:%M:%S')" "$HOST" "$PORT" "$ENGINE" "${PASSTHROUGH[*]:-}" >>"$LOG_FILE"
    local args=(--host "$HOST" --port "$PORT" --engine "$ENGINE" "${PASSTHROUGH[@]}")
    # setsid execs (no fork) because a background job of a script is not a group leader,
    # so $! is the python process itself.
    # The token travels in the environment so that `ps` does not show it.
    INDEX_TTS_TOKEN="$AUTH_TOKEN" GRADIO_ANALYTICS_ENABLED=False HF_HUB_DISABLE_TELEMETRY=1 PYTHONUNBUFFERED=1 \
        setsid nohup "$PY" "$WEBUI" "${args[@]}" >>"$LOG_FILE" 2>&1 </dev/null &
    pid=$!
    start_time=$(proc_start_time "$pid") || start_time=""
    if [[ -z $start_time ]]; then
        say "webui.py exited immediately."
        show_log_tail "$offset"
        exit "$EXIT_DIED"
    fi
    write_pid_file "$pid" "$start_time"

    # 4. Wait for /healthz.
    local base code_body deadline=$((SECONDS + TIMEOUT))
    base="http://$(probe_host "$HOST"):$PORT"
    say "Started webui.py (pid $pid); waiting up to ${TIMEOUT} s for $base/healthz"
    while true; do
        if ! pid_alive "$pid"; then
            local status=""
            wait "$pid" 2>/dev/null && status=0 || status=$?
            rm -f "$PID_FILE"
            say "webui.py exited during startup (exit status $status)."
            show_log_tail "$offset"
            exit "$EXIT_DIED"
        fi
        code_body=$(http_get "$base/healthz")
        [[ ${code_body%% *} == 200 ]] && break
        if ((SECONDS >= deadline)); then
            say "webui.py did not answer $base/healthz within ${TIMEOUT} s; stopping it (raise --timeout if the machine is slow)."
            stop_pid "$pid" || true
            rm -f "$PID_FILE"
            show_log_tail "$offset"
            exit "$EXIT_TIMEOUT"
        fi
        sleep 0.5
    done

    say "IndexTTS Studio is up: $base/"
    code_body=$(http_get "$base/readyz")
    case "${code_body%% *}" in
        200) say "Engine ready: ${code_body#* }" ;;
        503) say "Engine still loading (the page works meanwhile): ${code_body#* }" ;;
        *) say "Engine state unknown (/readyz answered ${code_body%% *})" ;;
    esac
    say "Logs: $LOG_FILE   Stop: ./start_app.sh stop"
}

cmd_stop() {
    if stop_instance; then
        say "Stopped."
    else
        say "Not running."
    fi
}

cmd_status() {
    if ! our_instance; then
        say "Not running."
        exit "$EXIT_NOT_RUNNING"
    fi
    local base code_body
    base="http://$(probe_host "${PF_HOST:-$HOST}"):${PF_PORT:-$PORT}"
    code_body=$(http_get "$base/healthz")
    if [[ ${code_body%% *} != 200 ]]; then
        say "Running (pid $PF_PID) but $base/healthz does not answer."
        exit "$EXIT_UNHEALTHY"
    fi
    say "Running (pid $PF_PID) at $base/"
    code_body=$(http_get "$base/readyz")
    say "readyz ${code_body%% *}: ${code_body#* }"
}

cmd_logs() {
    [[ -f $LOG_FILE ]] || die "$EXIT_NOT_RUNNING" "no log yet at $LOG_FILE"
    if [[ $FOLLOW == 1 ]]; then
        exec tail -n "$LOG_LINES" -F "$LOG_FILE"
    fi
    tail -n "$LOG_LINES" "$LOG_FILE"
}

case "$COMMAND" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart)
        cmd_stop
        cmd_start
        ;;
    status) cmd_status ;;
    logs) cmd_logs ;;
    install) install_venv "$INSTALL_DEV" "$INSTALL_RAY" ;;
esac
exit "$EXIT_OK"
