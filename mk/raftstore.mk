# raftstore: nothing to install (pure Go). `make test` runs fuzz-short: a short
# fuzzing run of the command-entry decoder on top of its seed corpus.
.PHONY: fuzz-short fuzz-raftstore

FUZZTIME ?= 20s

fuzz-short:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeCommand$$' -fuzztime $(FUZZTIME) ./raftstore/

fuzz-raftstore:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeCommand$$' -fuzztime 5m ./raftstore/
