# Debian packages the jobs' network and its tests use: iproute2 (`ip`, with
# which the egress tests make the network namespaces that stand for remote
# hosts), curl and psql (the clients Bash jobs are expected to have),
# ca-certificates (the machine's CA bundle, trusted by every job) and
# PostgreSQL's server (the real database the egress tests reach). Installed
# only when missing; the stamp holds the list, so a change to it re-checks.
NETPKGS := iproute2 curl ca-certificates postgresql postgresql-client
NETPKGS_STAMP := $(TOOLS_DIR)/netpkgs-$(shell echo $(NETPKGS) | sha256sum | cut -c1-12)

.PHONY: netpkgs
netpkgs: $(NETPKGS_STAMP)

$(NETPKGS_STAMP):
	@missing=""; for p in $(NETPKGS); do \
		dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "netpkgs: installing Debian packages:$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@mkdir -p $(TOOLS_DIR) && touch $@

DEPS += netpkgs
