#!/bin/sh
# splay-controller in a container. Settings come from the environment:
#   SPLAY_DB               SQLite path or postgresql://USER:PASSWORD@HOST/DB URL
#                          (default /var/lib/splay/controller.db)
#   SPLAY_LISTEN           HOST:PORT where daemons connect (default 0.0.0.0:11000)
#   SPLAY_API              HOST:PORT of the HTTP API and web page (default 0.0.0.0:8080)
#   SPLAY_TOKEN_FILE       file holding the API token (default /run/secrets/splay/api-token)
#   SPLAY_DAEMON_KEY_FILE  file holding the daemon key (default /run/secrets/splay/daemon-key)
# Any argument is passed on to splay-controller.
set -eu
exec splay-controller --db "${SPLAY_DB:-/var/lib/splay/controller.db}" \
    --listen "${SPLAY_LISTEN:-0.0.0.0:11000}" \
    --api "${SPLAY_API:-0.0.0.0:8080}" \
    --token-file "${SPLAY_TOKEN_FILE:-/run/secrets/splay/api-token}" \
    --daemon-key-file "${SPLAY_DAEMON_KEY_FILE:-/run/secrets/splay/daemon-key}" \
    "$@"
