# Windmill's CLI, wmill, from the npm registry (package "windmill-cli", pinned
# in tools/wmill/package.json and its lockfile, made with
# `npm install --package-lock-only`): the e2e tests drive the real CLI against
# the real binary (e2e/wmill_cli_test.go). It is plain JavaScript run by node;
# its native esbuild comes as a locked platform package. Install scripts are not
# run, so nothing is downloaded besides the locked tarballs. The stamp names
# the version, so bumping the pin reinstalls.
WMILL_VERSION := 1.819.0
WMILL_DIR_TOOLS := $(TOOLS_DIR)/wmill
WMILL_MAIN := $(WMILL_DIR_TOOLS)/node_modules/windmill-cli/esm/main.js
WMILL_STAMP := $(WMILL_DIR_TOOLS)/.installed-$(WMILL_VERSION)

.PHONY: wmill
wmill: $(WMILL_STAMP)

$(WMILL_STAMP): tools/wmill/package.json tools/wmill/package-lock.json
	mkdir -p $(WMILL_DIR_TOOLS)
	cp tools/wmill/package.json tools/wmill/package-lock.json $(WMILL_DIR_TOOLS)/
	npm install --prefix $(WMILL_DIR_TOOLS) --ignore-scripts --no-save --no-audit --no-fund --loglevel=error
	test -f $(WMILL_MAIN) || { echo "wmill missing at $(WMILL_MAIN) after npm install"; exit 1; }
	test "$$(node -p 'require(process.argv[1]).version' $(WMILL_DIR_TOOLS)/node_modules/windmill-cli/package.json)" = "$(WMILL_VERSION)" || { echo "unexpected wmill version at $(WMILL_DIR_TOOLS)"; exit 1; }
	touch $@

DEPS += wmill
