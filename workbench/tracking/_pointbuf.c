/* workbench.tracking._pointbuf: the tracking API's buffer of one metric's points, in C.
 *
 * An optional speed-up of workbench/tracking/api.py (which falls back to a flat Python list when
 * this module was not compiled). ``extend((step, value, time))`` appends one point to three
 * growable C arrays (int64 steps, float64 values and times): no Python object is kept per point,
 * and ``take()`` hands every buffered point to the drain as three byte strings in native byte
 * order (as ``array.frombytes`` reads them), then empties the buffer. Neither calls back into
 * Python code nor releases the GIL, so each is atomic beside other threads: a point is added whole
 * or not at all, and the drain takes whole points.
 * A step outside int64 raises OverflowError and adds nothing.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    PyObject_HEAD
    int64_t *steps;
    double *values;
    double *times;
    Py_ssize_t count;
    Py_ssize_t capacity;
} PointBuffer;

static void PointBuffer_dealloc(PointBuffer *self) {
    PyMem_Free(self->steps);
    PyMem_Free(self->values);
    PyMem_Free(self->times);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int grow(PointBuffer *self) {
    Py_ssize_t capacity = self->capacity ? self->capacity * 2 : 1024;
    if (capacity > PY_SSIZE_T_MAX / (Py_ssize_t)sizeof(double)) {
        PyErr_NoMemory();
        return -1;
    }
    int64_t *steps = PyMem_Realloc(self->steps, (size_t)capacity * sizeof(int64_t));
    if (steps == NULL) { PyErr_NoMemory(); return -1; }
    self->steps = steps;
    double *values = PyMem_Realloc(self->values, (size_t)capacity * sizeof(double));
    if (values == NULL) { PyErr_NoMemory(); return -1; }
    self->values = values;
    double *times = PyMem_Realloc(self->times, (size_t)capacity * sizeof(double));
    if (times == NULL) { PyErr_NoMemory(); return -1; }
    self->times = times;
    self->capacity = capacity;
    return 0;
}

static PyObject *PointBuffer_extend(PointBuffer *self, PyObject *point) {
    if (!PyTuple_CheckExact(point) || PyTuple_GET_SIZE(point) != 3) {
        PyErr_SetString(PyExc_TypeError, "a point is a (step, value, time) tuple");
        return NULL;
    }
    PyObject *step_obj = PyTuple_GET_ITEM(point, 0);
    PyObject *value_obj = PyTuple_GET_ITEM(point, 1);
    PyObject *time_obj = PyTuple_GET_ITEM(point, 2);
    /* exact types only: a subclass's __index__ or __float__ would run Python code mid-append */
    if (!PyLong_CheckExact(step_obj) || !PyFloat_CheckExact(value_obj) || !PyFloat_CheckExact(time_obj)) {
        PyErr_SetString(PyExc_TypeError, "a point is (int, float, float)");
        return NULL;
    }
    long long step = PyLong_AsLongLong(step_obj);
    if (step == -1 && PyErr_Occurred()) {
        return NULL; /* OverflowError: outside int64 */
    }
    if (self->count == self->capacity && grow(self) < 0) {
        return NULL;
    }
    self->steps[self->count] = (int64_t)step;
    self->values[self->count] = PyFloat_AS_DOUBLE(value_obj);
    self->times[self->count] = PyFloat_AS_DOUBLE(time_obj);
    self->count++;
    Py_RETURN_NONE;
}

static PyObject *as_bytes(const void *data, Py_ssize_t count) {
    return PyBytes_FromStringAndSize((const char *)data, count * 8);
}

static PyObject *PointBuffer_take(PointBuffer *self, PyObject *Py_UNUSED(ignored)) {
    Py_ssize_t count = self->count;
    PyObject *steps = as_bytes(self->steps, count);
    PyObject *values = steps ? as_bytes(self->values, count) : NULL;
    PyObject *times = values ? as_bytes(self->times, count) : NULL;
    if (times == NULL) {
        Py_XDECREF(steps);
        Py_XDECREF(values);
        return NULL; /* nothing taken: the points stay buffered */
    }
    self->count = 0;
    if (self->capacity > 65536) { /* a burst's arrays are not kept for the rest of the run */
        PyMem_Free(self->steps);
        PyMem_Free(self->values);
        PyMem_Free(self->times);
        self->steps = NULL;
        self->values = NULL;
        self->times = NULL;
        self->capacity = 0;
    }
    PyObject *result = PyTuple_Pack(3, steps, values, times);
    Py_DECREF(steps);
    Py_DECREF(values);
    Py_DECREF(times);
    return result;
}

static Py_ssize_t PointBuffer_len(PointBuffer *self) {
    return self->count;
}

static PyMethodDef PointBuffer_methods[] = {
    {"extend", (PyCFunction)PointBuffer_extend, METH_O,
     "extend((step, value, time)): add one point (int, float, float); OverflowError for a step outside int64."},
    {"take", (PyCFunction)PointBuffer_take, METH_NOARGS,
     "take() -> (steps, values, times): every buffered point as native int64/float64 bytes; empties the buffer."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods PointBuffer_as_sequence = {
    .sq_length = (lenfunc)PointBuffer_len,
};

static PyTypeObject PointBufferType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "workbench.tracking._pointbuf.PointBuffer",
    .tp_doc = PyDoc_STR("Buffered points of one metric: extend((step, value, time)), take(), len()."),
    .tp_basicsize = sizeof(PointBuffer),
    .tp_itemsize = 0,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)PointBuffer_dealloc,
    .tp_methods = PointBuffer_methods,
    .tp_as_sequence = &PointBuffer_as_sequence,
};

static struct PyModuleDef pointbuf_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "workbench.tracking._pointbuf",
    .m_doc = PyDoc_STR("The tracking API's per-metric point buffer in C (optional; api.py falls back to a list)."),
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__pointbuf(void) {
    if (PyType_Ready(&PointBufferType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&pointbuf_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&PointBufferType);
    if (PyModule_AddObject(module, "PointBuffer", (PyObject *)&PointBufferType) < 0) {
        Py_DECREF(&PointBufferType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
