# CPython 3.11 for WASI, built from Debian's source packages with Debian's clang
# and wasi-libc, then pre-initialized with Wizer (tools/python-wasm/build.sh
# says how). The output goes in .tools/python-wasm/<key>/, where the key hashes
# every input of the recipe (the scripts, the patches, the entry C file, the
# wrapper, this file), so a change to any of them rebuilds and nothing else
# does; .tools/python-wasm/current points at the newest build, which is what
# the Python executor and its tests load. Sources and objects are kept in
# .tools/python-wasm/work/ so that a rebuild after a wrapper change is quick;
# the package's tests keep wazero's compiled code in .tools/python-wasm/test-cache/.
PYTHON_WASM_DIR := $(TOOLS_DIR)/python-wasm
PYTHON_WASM_INPUTS := mk/python-wasm.mk $(sort $(wildcard tools/python-wasm/*.sh tools/python-wasm/*.c tools/python-wasm/*.py tools/python-wasm/*.mk tools/python-wasm/patches/*.patch))
PYTHON_WASM_KEY := $(shell cat $(PYTHON_WASM_INPUTS) | sha256sum | cut -c1-16)
PYTHON_WASM_OUT := $(PYTHON_WASM_DIR)/$(PYTHON_WASM_KEY)
PYTHON_WASM_STAMP := $(PYTHON_WASM_OUT)/.built

.PHONY: python-wasm
python-wasm: $(PYTHON_WASM_STAMP)

$(PYTHON_WASM_STAMP): $(PYTHON_WASM_INPUTS)
	@echo "python-wasm: building CPython for WASI into $(PYTHON_WASM_OUT) (takes a few minutes)"
	bash tools/python-wasm/build.sh $(PYTHON_WASM_OUT) $(PYTHON_WASM_DIR)/work
	ln -sfn $(PYTHON_WASM_KEY) $(PYTHON_WASM_DIR)/current
	@# compile the interpreter to machine code for the tests now, without the
	@# race detector's slowdown (about 20x on wazero's compiler); test binaries
	@# carry no module versions, so wazero keys their cache as version "dev"
	rm -rf $(PYTHON_WASM_DIR)/test-cache $(PYTHON_WASM_DIR)/test-cache-nocheck
	$(GO) run -ldflags "-X github.com/tetratelabs/wazero/internal/version.version=dev" ./tools/python-wasm/precompile -build $(PYTHON_WASM_OUT) -cache $(PYTHON_WASM_DIR)/test-cache
	touch $@
	@# older builds (other keys) are of no further use
	find $(PYTHON_WASM_DIR) -mindepth 1 -maxdepth 1 -type d ! -name work ! -name 'test-cache*' ! -name $(PYTHON_WASM_KEY) -exec rm -rf {} +

DEPS += python-wasm
