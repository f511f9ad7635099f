/* workbench.versioning._sealcheck: does every folder and file of a status seal still stat the same?
 *
 * The optional C half of workbench/versioning/seal.py (which has the same loop in Python, about
 * three times slower, where this module was not built). ``unchanged(root, stats, paths)``: ``stats``
 * holds four native int64 per entry (size, mtime_ns, ctime_ns, inode as unsigned), ``paths`` the entries'
 * paths relative to ``root``, each ended by a NUL. Each is lstat'ed (never following a link at the
 * last component) with the GIL released; the answer is False at the first entry that is missing or
 * differs, True when all match. Nothing is opened but ``root`` and nothing is written.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int all_unchanged(int root, const char *stats, Py_ssize_t count, const char *paths,
                         Py_ssize_t length) {
    const char *at = paths;
    const char *end = paths + length;
    for (Py_ssize_t i = 0; i < count; i++) {
        const char *stop = memchr(at, '\0', (size_t)(end - at));
        if (stop == NULL) {
            return 0; /* fewer paths than stats: a damaged seal proves nothing */
        }
        struct stat st;
        if (fstatat(root, at, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            return 0;
        }
        int64_t want[4];
        memcpy(want, stats + 32 * i, sizeof want); /* the seal's bytes need not be aligned */
        int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
        int64_t ctime = (int64_t)st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec;
        if ((int64_t)st.st_size != want[0] || mtime != want[1] || ctime != want[2]
                || (uint64_t)st.st_ino != (uint64_t)want[3]) {
            return 0;
        }
        at = stop + 1;
    }
    return at == end; /* as many paths as stats */
}

static PyObject *unchanged(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *root_obj;
    Py_buffer stats, paths;
    if (!PyArg_ParseTuple(args, "O&y*y*", PyUnicode_FSConverter, &root_obj, &stats, &paths)) {
        return NULL;
    }
    int result = 0;
    if (stats.len % 32 == 0) {
        int root = -1;
        Py_BEGIN_ALLOW_THREADS
        root = open(PyBytes_AS_STRING(root_obj), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (root >= 0) {
            result = all_unchanged(root, (const char *)stats.buf, stats.len / 32, (const char *)paths.buf,
                                   paths.len);
            close(root);
        }
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&stats);
    PyBuffer_Release(&paths);
    Py_DECREF(root_obj);
    return PyBool_FromLong(result);
}

static PyMethodDef sealcheck_methods[] = {
    {"unchanged", unchanged, METH_VARARGS,
     "unchanged(root, stats, paths) -> bool: every entry still has its (size, mtime_ns, ctime_ns, inode)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef sealcheck_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "workbench.versioning._sealcheck",
    .m_doc = PyDoc_STR("The stat loop of a status seal in C (optional; seal.py has it in Python too)."),
    .m_size = -1,
    .m_methods = sealcheck_methods,
};

PyMODINIT_FUNC PyInit__sealcheck(void) {
    return PyModule_Create(&sealcheck_module);
}
