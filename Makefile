# The README's commands: `make run` starts a quick-start node on SQLite,
# `make test` runs every test against real SQLite, PostgreSQL and MariaDB and each fuzz target briefly,
# `make bench` compares sqlmta with Postfix on this machine.
GO ?= go
VAR := $(CURDIR)/var
RELAYHOST ?=
GOTESTFLAGS ?= -race -count=1 -timeout 40m

.PHONY: build run test bench clean install

build:
	$(GO) build -o bin/mtad ./cmd/mtad
	$(GO) build -o bin/mtactl ./cmd/mtactl
	$(GO) build -o bin/postdrop ./cmd/postdrop

run: build
	mkdir -p $(VAR)/etc $(VAR)/data $(VAR)/mail
	sed -e 's|@VAR@|$(VAR)|g' -e 's|@RELAYHOST@|$(RELAYHOST)|g' etc/quickstart/main.cf.in > $(VAR)/etc/main.cf
	cp etc/quickstart/master.cf $(VAR)/etc/master.cf
	exec bin/mtad -c $(VAR)/etc

# Starts throwaway PostgreSQL and MariaDB servers unless SQLMTA_TEST_PG_URL /
# SQLMTA_TEST_MYSQL_URL name existing ones, runs every test, stops them.
test:
	bash scripts/test.sh $(GOTESTFLAGS)

# Installs under $(PREFIX) (default /usr/local) as root: binaries, the
# Postfix-named links, the set-gid postdrop helper and the maildrop.
install:
	PREFIX=$(or $(PREFIX),/usr/local) GO=$(GO) bash scripts/install.sh

bench: build
	bash scripts/bench.sh

clean:
	rm -rf bin var
