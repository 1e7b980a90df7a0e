# Sourced by the scripts that build or test on every supported CPython.
# VERSIONS: the versions; find_interpreter X.Y prints a working pythonX.Y (PATH first, then
# pyenv's installed versions, whose shims only answer for the versions enabled in the shell).
VERSIONS="3.11 3.12 3.13"
find_interpreter() {
    local candidate
    for candidate in "$(command -v "python$1" || true)" $(ls -d "$HOME"/.pyenv/versions/"$1".*/bin/python 2>/dev/null | sort -V -r); do
        if [ -n "$candidate" ] && "$candidate" -c 'import sys' >/dev/null 2>&1; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}
