"""Hostile job: the Python equivalents of Lua's debug.* -- reach frames and trace the interpreter.

sys._getframe and a traceback's tb_frame give the frames of the code that called the job (the
runner, the sandbox); a trace or profile function sees every frame of every call and, in
CPython, writes changed f_locals back into the traced frame.
"""
import sys

for name, attempt in (("sys._getframe", lambda: sys._getframe(1)),
                      ("tb_frame", lambda: (1 / 0)),
                      ("sys.settrace", lambda: sys.settrace(lambda *a: None)),
                      ("sys.setprofile", lambda: sys.setprofile(lambda *a: None))):
    try:
        attempt()
        print(name, "ALLOWED", flush=True)
    except ZeroDivisionError as error:
        try:
            print(name, "ALLOWED", error.__traceback__.tb_frame, flush=True)
        except Exception as refusal:
            print(name, "refused:", str(refusal).split(":")[0], flush=True)
    except Exception as refusal:
        print(name, "refused:", str(refusal).split(":")[0], flush=True)
import locale                                   # allowed: it changes this process only
print("locale.setlocale allowed:", locale.setlocale(locale.LC_NUMERIC, "C"), flush=True)
sys.settrace(lambda *args: None)
