# Appended to CPython's Makefile by build.sh: links the interpreter as a WASI
# reactor (no _start; exports vane_init and vane_run from vane_entry.c) with
# the same objects and libraries as python.wasm.
Programs/vane_entry.o: $(VANE_ENTRY_C) $(PYTHON_HEADERS)
	$(CC) -c $(PY_CORE_CFLAGS) -o $@ $(VANE_ENTRY_C)

vane-python.wasm: Programs/vane_entry.o $(LINK_PYTHON_DEPS)
	$(LINKCC) $(PY_CORE_LDFLAGS) $(LINKFORSHARED) -mexec-model=reactor -o $@ Programs/vane_entry.o $(LINK_PYTHON_OBJS) $(LIBS) $(MODLIBS) $(SYSLIBS)
