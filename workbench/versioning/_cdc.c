/* workbench.versioning._cdc: the cut points of FastCDC (2020, normalized), about 3x faster.
 *
 * The optional C half of workbench/versioning/chunking.py, which falls back to pyfastcdc's chunker
 * where this module was not built. The cuts are those of pyfastcdc (the algorithm of fastcdc-rs'
 * v2020 module), byte for byte: tests/versioning/test_cdc.py compares both on random data and
 * every size bound. The gear table and masks are passed in from pyfastcdc, so both use one copy.
 *
 * Why faster: a gear hash is a serial chain, h = (h << 1) + GEAR[byte], one dependent step per byte.
 * But bit k of h depends only on the last k + 1 bytes (older bytes are shifted out of the 64-bit
 * word), so the hash at any position can be computed from the 64 bytes before it, whatever came
 * earlier. The search for a chunk's cut therefore runs four independent chains at once, each over
 * its own quarter of a window of the chunk, each warmed up on the 64 bytes before its quarter; the
 * CPU overlaps the four chains. When a chain matches, that window is searched again in order with
 * one chain, so the cut returned is the first match, as the serial loop finds it.
 *
 * The serial loop's rules, kept here: the hash starts at 0 at min_size (rounded down to even) and
 * is tested at each byte; before ``center`` (avg_size, or the bytes left if fewer, rounded down to
 * even) against mask_s, from there against mask_l; a match after the byte at offset i cuts i bytes
 * (that byte starts the next chunk); the 2020 loop tests (h << 1) & (mask << 1) after an even
 * offset's byte, so there the mask's bit 63 is not tested; no match up to max_size (rounded down
 * to even) cuts max_size bytes, or all that is left.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define LANE 4096 /* bytes per chain per window; even */
#define WARM 64   /* bytes a chain hashes before it may test */

typedef struct {
    const uint64_t *gear;
    uint64_t mask_s, mask_l;
    size_t min_size, avg_size, max_size;
} Config;

/* The first offset i in [lo, hi) (both even) whose hash tests zero, the hash starting at 0 at
 * ``origin`` (<= lo); ``hi`` if none. */
static size_t scan(const uint8_t *buf, size_t origin, size_t lo, size_t hi, const uint64_t *gear,
                   uint64_t mask) {
    uint64_t even = mask & 0x7fffffffffffffffULL;
    uint64_t h = 0;
    size_t i = lo >= origin + WARM ? lo - WARM : origin;
    for (; i < lo; i++) {
        h = (h << 1) + gear[buf[i]];
    }
    for (; i < hi; i += 2) {
        h = (h << 1) + gear[buf[i]];
        if ((h & even) == 0) {
            return i;
        }
        h = (h << 1) + gear[buf[i + 1]];
        if ((h & mask) == 0) {
            return i + 1;
        }
    }
    return hi;
}

/* As scan(), with CHAINS chains per window of CHAINS * LANE bytes. */
#ifndef CHAINS
#define CHAINS 4
#endif
static size_t search(const uint8_t *buf, size_t origin, size_t lo, size_t hi, const uint64_t *gear,
                     uint64_t mask) {
    uint64_t even = mask & 0x7fffffffffffffffULL;
    size_t w = lo;
    while (w + CHAINS * LANE <= hi) {
        const uint8_t *p[CHAINS];
        uint64_t h[CHAINS];
        for (int k = 0; k < CHAINS; k++) {
            p[k] = buf + w + (size_t)k * LANE;
            h[k] = 0;
        }
        /* Chain 0 of a window near ``origin`` warms up on fewer bytes: the hash starts there. */
        size_t first = w >= origin + WARM ? WARM : w - origin;
        for (const uint8_t *q = p[0] - first; q < p[0]; q++) {
            h[0] = (h[0] << 1) + gear[*q];
        }
        for (size_t j = 0; j < WARM; j++) { /* p[k] - WARM >= p[0]: the warm-up stays in the buffer */
            for (int k = 1; k < CHAINS; k++) {
                h[k] = (h[k] << 1) + gear[(p[k] - WARM)[j]];
            }
        }
        int hit = 0;
        for (size_t j = 0; j < LANE && !hit; j += 2) {
            int zero = 0;
            for (int k = 0; k < CHAINS; k++) {
                h[k] = (h[k] << 1) + gear[p[k][j]];
                zero |= !(h[k] & even);
            }
            for (int k = 0; k < CHAINS; k++) {
                h[k] = (h[k] << 1) + gear[p[k][j + 1]];
                zero |= !(h[k] & mask);
            }
            hit = zero;
        }
        if (hit) {
            return scan(buf, origin, w, w + CHAINS * LANE, gear, mask);
        }
        w += CHAINS * LANE;
    }
    return scan(buf, origin, w, hi, gear, mask);
}

/* The length of the chunk that starts at ``buf`` with ``len`` bytes left. */
static size_t cut(const uint8_t *buf, size_t len, const Config *c) {
    if (len <= c->min_size) {
        return len;
    }
    size_t remaining = len, center = c->avg_size;
    if (remaining > c->max_size) {
        remaining = c->max_size;
    } else if (remaining < center) {
        center = remaining;
    }
    size_t start = c->min_size / 2 * 2, mid = center / 2 * 2, end = remaining / 2 * 2;
    if (start < mid) {
        size_t at = search(buf, start, start, mid, c->gear, c->mask_s);
        if (at < mid) {
            return at;
        }
    }
    size_t lo = mid > start ? mid : start;
    if (lo < end) {
        size_t at = search(buf, start, lo, end, c->gear, c->mask_l);
        if (at < end) {
            return at;
        }
    }
    return remaining;
}

static PyObject *cuts(PyObject *module, PyObject *args) {
    (void)module;
    Py_buffer data, gear;
    unsigned long long mask_s, mask_l;
    Py_ssize_t min_size, avg_size, max_size;
    int whole;
    if (!PyArg_ParseTuple(args, "y*y*KKnnnp", &data, &gear, &mask_s, &mask_l, &min_size, &avg_size,
                          &max_size, &whole)) {
        return NULL;
    }
    PyObject *result = NULL;
    if (gear.len != 256 * (Py_ssize_t)sizeof(uint64_t) || min_size < 64 || avg_size < min_size
            || max_size < avg_size) {
        PyErr_SetString(PyExc_ValueError, "cuts: a gear table of 256 uint64 and 64 <= min <= avg <= max");
        goto done;
    }
    uint64_t table[256];
    memcpy(table, gear.buf, sizeof table); /* aligned, and safe from the caller's buffer */
    Config c = {table, mask_s, mask_l, (size_t)min_size, (size_t)avg_size, (size_t)max_size};
    size_t total = (size_t)data.len, cap = total / (size_t)(min_size - 1) + 2;
    size_t *lengths = PyMem_RawMalloc(cap * sizeof(size_t));
    if (lengths == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    size_t count = 0, at = 0;
    const uint8_t *bytes = data.buf;
    Py_BEGIN_ALLOW_THREADS
    while (at < total && (whole || total - at >= (size_t)max_size) && count < cap) {
        size_t n = cut(bytes + at, total - at, &c);
        lengths[count++] = n;
        at += n;
    }
    Py_END_ALLOW_THREADS
    result = PyList_New((Py_ssize_t)count);
    for (size_t i = 0; result != NULL && i < count; i++) {
        PyObject *n = PyLong_FromSize_t(lengths[i]);
        if (n == NULL) {
            Py_CLEAR(result);
            break;
        }
        PyList_SET_ITEM(result, (Py_ssize_t)i, n);
    }
    PyMem_RawFree(lengths);
done:
    PyBuffer_Release(&data);
    PyBuffer_Release(&gear);
    return result;
}

static PyMethodDef cdc_methods[] = {
    {"cuts", cuts, METH_VARARGS,
     "cuts(data, gear, mask_s, mask_l, min_size, avg_size, max_size, whole) -> list[int]: the lengths "
     "of the chunks cut from the start of data; unless whole, it stops where fewer than max_size "
     "bytes are left (a cut there could move once more data follows)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef cdc_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "workbench.versioning._cdc",
    .m_doc = PyDoc_STR("FastCDC's cut points in C (optional; chunking.py uses pyfastcdc otherwise)."),
    .m_size = -1,
    .m_methods = cdc_methods,
};

PyMODINIT_FUNC PyInit__cdc(void) {
    return PyModule_Create(&cdc_module);
}
