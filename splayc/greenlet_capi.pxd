# greenlet's C API (greenlet.h ships inside the greenlet package directory; setup.py adds it).
# Only splayc/hub.pyx cimports this: the other core modules reach greenlets through the Hub.
from cpython.ref cimport PyObject

cdef extern from "greenlet.h":
    ctypedef class greenlet.greenlet [object PyGreenlet]:
        pass
    void** _PyGreenlet_API
    void PyGreenlet_Import()
    greenlet PyGreenlet_GetCurrent()
    greenlet PyGreenlet_New(object run, greenlet parent)
    object PyGreenlet_Switch(greenlet g, PyObject* args, PyObject* kwargs)
    object PyGreenlet_Throw(greenlet g, object typ, object val, PyObject* tb)
    int PyGreenlet_SetParent(greenlet g, greenlet parent) except -1
    bint PyGreenlet_ACTIVE(greenlet g)
    bint PyGreenlet_STARTED(greenlet g)
    PyObject* PyExc_GreenletExit
