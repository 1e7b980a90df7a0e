#!/bin/sh
# splayd in a container. Settings come from the environment (a DaemonSet or `podman run -e`):
#   SPLAYD_CONTROLLER  HOST:PORT where the controller accepts daemons (required)
#   SPLAYD_KEY_FILE    file holding the daemon key (default /run/secrets/splay/daemon-key)
#   SPLAYD_IP          address the nodes listen on (default: the container's first address)
#   SPLAYD_DIR         job directory (default /var/lib/splayd)
#   SPLAYD_NAME        daemon name (default: the host name)
# Any argument is passed on to splayd (e.g. --max-instances 50 --shaping-device eth0).
set -eu
: "${SPLAYD_CONTROLLER:?set SPLAYD_CONTROLLER to the controller's HOST:PORT for daemons}"
exec splayd --controller "$SPLAYD_CONTROLLER" \
    --key-file "${SPLAYD_KEY_FILE:-/run/secrets/splay/daemon-key}" \
    --ip "${SPLAYD_IP:-$(hostname -i | cut -d' ' -f1)}" \
    --dir "${SPLAYD_DIR:-/var/lib/splayd}" \
    --name "${SPLAYD_NAME:-$(hostname)}" \
    "$@"
