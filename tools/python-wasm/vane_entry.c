/*
 * vane_entry.c: the entry points of vane's CPython reactor.
 *
 * vane_init starts the interpreter and imports vane_wrapper (which imports
 * json, datetime, re, base64, traceback, inspect, ...). Wizer runs it once at
 * build time and saves the resulting linear memory, so every job starts from
 * an initialized interpreter. vane_run then handles one request: it re-reads
 * the environment (the snapshot holds the build's, empty one) and calls
 * vane_wrapper.run(), which reads the request from stdin and writes the
 * response to stdout. Each job gets a fresh instance of the snapshot: nothing
 * of one job survives into the next.
 */
#include "Python.h"

#include <stdio.h>
#include <stdlib.h>

extern void __wasm_call_ctors(void);
extern void __wasilibc_deinitialize_environ(void);
extern void __wasilibc_initialize_environ(void);

/* vane_wrapper.run, set by vane_init. */
static PyObject *vane_run_func = NULL;

static void fail_status(PyStatus status) {
    if (PyStatus_Exception(status)) {
        fprintf(stderr, "vane: cannot initialize python: %s\n",
                status.err_msg ? status.err_msg : "unknown error");
        fflush(stderr);
        abort();
    }
}

__attribute__((export_name("vane_init")))
void vane_init(void) {
    __wasm_call_ctors();

    /* UTF-8 mode: files, stdio and the filesystem encoding are UTF-8 (WASI
       has no locale; without it they would be ASCII). */
    PyPreConfig preconfig;
    PyPreConfig_InitIsolatedConfig(&preconfig);
    preconfig.utf8_mode = 1;
    fail_status(Py_PreInitialize(&preconfig));

    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    config.site_import = 0;
    config.write_bytecode = 0;
    config.install_signal_handlers = 0;
    config.parse_argv = 0;
    config.pathconfig_warnings = 0;
    config.use_hash_seed = 0;
    fail_status(PyConfig_SetString(&config, &config.program_name, L"python3.11"));
    fail_status(PyConfig_SetString(&config, &config.home, L"/usr/local"));
    config.module_search_paths_set = 1;
    fail_status(PyWideStringList_Append(&config.module_search_paths, L"/script"));
    fail_status(PyWideStringList_Append(&config.module_search_paths, L"/usr/local/lib/python3.11"));
    fail_status(PyWideStringList_Append(&config.module_search_paths, L"/packages"));
    fail_status(Py_InitializeFromConfig(&config));
    PyConfig_Clear(&config);

    PyObject *mod = PyImport_ImportModule("vane_wrapper");
    if (mod == NULL) {
        PyErr_Print();
        fflush(stderr);
        abort();
    }
    PyObject *init = PyObject_GetAttrString(mod, "init");
    if (init != NULL) {
        PyObject *r = PyObject_CallNoArgs(init);
        Py_XDECREF(r);
        Py_DECREF(init);
    }
    vane_run_func = PyObject_GetAttrString(mod, "run");
    Py_DECREF(mod);
    if (vane_run_func == NULL || PyErr_Occurred()) {
        PyErr_Print();
        fflush(stderr);
        abort();
    }
    fflush(stdout);
    fflush(stderr);
}

/* vane_run handles one request; it returns 0 when the response was written. */
__attribute__((export_name("vane_run")))
int vane_run(void) {
    if (vane_run_func == NULL) {
        vane_init();
    }
    __wasilibc_deinitialize_environ();
    __wasilibc_initialize_environ();
    PyObject *r = PyObject_CallNoArgs(vane_run_func);
    int rc = 0;
    if (r == NULL) {
        PyErr_Print();
        rc = 2;
    } else {
        rc = (int)PyLong_AsLong(r);
        Py_DECREF(r);
    }
    fflush(stdout);
    fflush(stderr);
    return rc;
}
