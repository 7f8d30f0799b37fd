#!/usr/bin/env bash
# Starts and stops the LLM fixture server (llama.cpp's llama-server with a tiny
# deterministic model; see ../shared/llm-fixture/README.md) for the provider
# end-to-end tests (runtime/tests/fixture_e2e.rs).
#
#   .ci/fixture.sh start   # builds once (cached, 7-16 min), starts; prints the URL
#   .ci/fixture.sh url     # prints the URL
#   .ci/fixture.sh stop    # stops the server the fixture script started
#
# Use:  export GUIDERAIL_FIXTURE_URL="$(.ci/fixture.sh start)"
# Only the URL goes to stdout; build and server output go to stderr.
# Env: GUIDERAIL_FIXTURE_PORT (default 18080), LLM_FIXTURE_SCRIPT (path to
# llama_server.sh; default ../shared/llm-fixture/llama_server.sh next to the repo).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${GUIDERAIL_FIXTURE_PORT:-18080}"
SCRIPT="${LLM_FIXTURE_SCRIPT:-$ROOT/../shared/llm-fixture/llama_server.sh}"
URL="http://127.0.0.1:$PORT"

running() {
  # Our fixture, not just anything on the port: it serves the `tiny-fixture` alias.
  curl -sf "$URL/health" >/dev/null 2>&1 &&
    curl -sf "$URL/v1/models" 2>/dev/null | grep -q tiny-fixture
}

case "${1:-}" in
  start)
    if running; then
      echo "fixture already running at $URL" >&2
    else
      [ -x "$SCRIPT" ] || { echo "fixture script not found: $SCRIPT" >&2; exit 1; }
      "$SCRIPT" start "$PORT" >&2
      running || { echo "fixture did not come up at $URL" >&2; exit 1; }
    fi
    echo "$URL"
    ;;
  url)
    echo "$URL"
    ;;
  stop)
    [ -x "$SCRIPT" ] || { echo "fixture script not found: $SCRIPT" >&2; exit 1; }
    "$SCRIPT" stop >&2
    ;;
  *)
    echo "usage: $0 start|url|stop" >&2
    exit 2
    ;;
esac
