"""Hostile job: build new code by editing an existing code object."""
def innocent():
    return 1
innocent.__code__.replace(co_consts=(None, 2))
