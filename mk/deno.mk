# Deno, the TypeScript runtime, from the npm registry (package "deno", pinned in
# tools/deno/package.json and its lockfile; "npm install" rather than "npm ci"
# because the lock records only the platform packages the registry offers for
# this version, which npm ci counts as out of sync). The real binary ships in the
# platform package @deno/linux-x64-glibc; install scripts are not run, so
# nothing is downloaded besides the locked tarballs. The stamp names the
# version, so bumping the pin reinstalls.
DENO_VERSION := 2.9.6
DENO_DIR_TOOLS := $(TOOLS_DIR)/deno
DENO_BIN := $(DENO_DIR_TOOLS)/node_modules/@deno/linux-x64-glibc/deno
DENO_STAMP := $(DENO_DIR_TOOLS)/.installed-$(DENO_VERSION)

.PHONY: deno
deno: $(DENO_STAMP)

$(DENO_STAMP): tools/deno/package.json tools/deno/package-lock.json
	mkdir -p $(DENO_DIR_TOOLS)
	cp tools/deno/package.json tools/deno/package-lock.json $(DENO_DIR_TOOLS)/
	npm install --prefix $(DENO_DIR_TOOLS) --ignore-scripts --no-save --no-audit --no-fund --loglevel=error
	test -x $(DENO_BIN) || { echo "deno binary missing at $(DENO_BIN) after npm install"; exit 1; }
	$(DENO_BIN) --version | head -1 | grep -q ' $(DENO_VERSION) ' || { echo "unexpected deno version at $(DENO_BIN)"; exit 1; }
	touch $@

DEPS += deno
