# The buffer's lock: a mutex whose uncontended acquire and release are two C stores (_lock.pyx).

cimport cython


@cython.final
cdef class Lock:
    cdef bint _held
    cdef Py_ssize_t _waiting
    cdef object _wake

    cdef int take(self) except -1
    cdef int give(self) except -1
    cdef bint _wait(self, double timeout) except -1
