/*
 * /qwex/bin/qwex: the self-contained qwex agent's executable (DESIGN §1.1).
 *
 * An embedded CPython that runs the module `qwex_agent_entry` from the bundle's own
 * lib/pythonX.Y. The build links it with libpython and points its ELF interpreter at the
 * bundled glibc loader (/qwex/lib/ld-*.so) with an RPATH of $ORIGIN/../lib, so it needs
 * nothing from the image: no Python, no libc, no shell, no /tmp. The interpreter is
 * isolated (PYTHON* variables of the image are ignored) and in UTF-8 mode without locale
 * coercion, so the environment the user's command inherits is exactly the container's.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define USAGE                                                                                  \
    "usage: qwex run --local [--run-dir DIR] [--grace SECONDS] [--quiet] [--] COMMAND...\n"      \
    "       qwex agent copy DEST\n"

/* The bundle root: the directory above bin/ holding this executable. */
static int bundle_root(const char *argv0, char *out, size_t size) {
    char exe[PATH_MAX];
    if (!(strchr(argv0, '/') && realpath(argv0, exe))) {
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n < 0)
            return -1;
        exe[n] = '\0';
    }
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(exe, '/');
        if (!slash)
            return -1;
        *slash = '\0';
    }
    if (snprintf(out, size, "%s", exe[0] ? exe : "/") >= (int)size)
        return -1;
    return 0;
}

static void fail(PyStatus status) {
    if (PyStatus_IsExit(status))
        exit(status.exitcode);
    fprintf(stderr, "qwex: the agent's Python failed to start: %s%s%s\n",
            status.func ? status.func : "", status.func ? ": " : "",
            status.err_msg ? status.err_msg : "unknown error");
    exit(125);
}

int main(int argc, char **argv) {
    char root[PATH_MAX];
    int run = argc >= 3 && strcmp(argv[1], "run") == 0 && strcmp(argv[2], "--local") == 0;
    int copy = argc >= 3 && strcmp(argv[1], "agent") == 0 && strcmp(argv[2], "copy") == 0;
    if (!run && !copy) {
        fputs(USAGE, stderr);
        return 2;
    }
    if (bundle_root(argv[0], root, sizeof root) != 0) {
        fputs("qwex: the agent cannot find its own directory\n", stderr);
        return 125;
    }

    PyPreConfig pre;
    PyPreConfig_InitIsolatedConfig(&pre);
    pre.utf8_mode = 1;
    pre.coerce_c_locale = 0;
    PyStatus status = Py_PreInitialize(&pre);
    if (PyStatus_Exception(status))
        fail(status);

    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    config.site_import = 0;
    config.write_bytecode = 0;
    config.buffered_stdio = 0;
    config.install_signal_handlers = 1;
    status = PyConfig_SetBytesString(&config, &config.home, root);
    if (!PyStatus_Exception(status))
        status = PyConfig_SetBytesString(&config, &config.program_name, argv[0]);
    if (!PyStatus_Exception(status))
        status = PyConfig_SetBytesString(&config, &config.run_module, "qwex_agent_entry");
    if (!PyStatus_Exception(status))
        status = PyConfig_SetBytesArgv(&config, argc, argv);
    if (!PyStatus_Exception(status))
        status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status))
        fail(status);
    return Py_RunMain();
}
