# A local three-node cluster, and the long chaos run.
#   make cluster   vane cluster up --nodes 3 --dir ./vane-cluster (Ctrl-C stops it)
#   make chaos     the chaos test for 10 minutes (the 60 s form runs in make test)
.PHONY: cluster chaos

CLUSTER_DIR ?= ./vane-cluster
CHAOS_DURATION ?= 10m

cluster: deps build
	$(BIN) cluster up --nodes 3 --dir $(CLUSTER_DIR)

chaos: deps
	VANE_CHAOS_DURATION=$(CHAOS_DURATION) $(GO) test -race -count=1 -v -timeout 60m -run 'TestChaos_' ./e2e/
