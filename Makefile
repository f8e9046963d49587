# cairn — build, test, run.
#
#   make deps    install missing build/test dependencies with apt-get
#   make         build build/cairn (and the test stand-in backend)
#   make run     deps + build + serve conf/cairn.json (with the stand-in
#                backend unless UPSTREAM=URL is given)
#   make test    deps + build + unit and integration tests
#   make test SANITIZE=1   the same under AddressSanitizer + UBSan
#   make bench   cairn against nginx proxy_pass and the bare backend (wrk),
#                with TTFB and memory; the table goes to build/bench.md
#   make demo    violation rate and latency with validation and retry, on a
#                simulated disobedient backend

VERSION  := 0.1.0
CC       ?= cc
PKGS     := libevent libcurl libcjson openssl libpcre2-8 libexttextcat expat cmocka
DEB_PKGS := pkg-config libevent-dev libcurl4-openssl-dev libcjson-dev libssl-dev \
            libpcre2-dev libexttextcat-dev libexpat1-dev libcmocka-dev python3 nodejs npm
# promtool, the Prometheus project's own parser, checks /metrics in the tests;
# its package's recommendations (node exporter, web assets) are not needed.
# Headless chromium renders `cairn report --html` pages in the tests.
DEB_TOOLS := prometheus chromium

ifeq ($(SANITIZE),1)
BUILD    := build/asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
OPT      := -O1
else
BUILD    := build
SANFLAGS :=
OPT      := -O2
endif

# Messages are built with snprintf and truncated on purpose when too long.
WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror \
            -Wno-format-truncation
CFLAGS   := -std=c11 $(OPT) -g $(WARN) $(SANFLAGS) -D_GNU_SOURCE -DCAIRN_VERSION='"$(VERSION)"' \
            -Iinclude $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LIBS     := $(shell pkg-config --libs libevent libcurl libcjson openssl libpcre2-8 libexttextcat expat 2>/dev/null) -lm
TEST_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)
LDFLAGS  := $(SANFLAGS)

SRCS     := $(wildcard proxy/*.c)
LIB_OBJS := $(patsubst proxy/%.c,$(BUILD)/obj/%.o,$(filter-out proxy/main.c,$(SRCS)))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
STANDIN  := $(BUILD)/cairn-standin
MARKER_BENCH := $(BUILD)/marker-bench
BENCH_BINS := $(BUILD)/bench-canned $(BUILD)/bench-client

.PHONY: all deps run test unit integration bench demo clean
all: $(BUILD)/cairn $(STANDIN)

deps:
	@missing=""; \
	for p in $(PKGS); do pkg-config --exists $$p 2>/dev/null || missing=1; done; \
	for c in python3 node npm promtool chromium; do command -v $$c >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing $(DEB_PKGS) $(DEB_TOOLS)"; \
	  apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PKGS) && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEB_TOOLS); \
	fi

$(BUILD)/obj/%.o: proxy/%.c $(wildcard include/*.h) | $(BUILD)/obj
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/cairn: $(BUILD)/obj/main.o $(LIB_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/unit.h $(LIB_OBJS) | $(BUILD)/tests
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(LIBS) $(TEST_LIBS)

$(MARKER_BENCH): tests/bench/marker_bench.c $(LIB_OBJS) | $(BUILD)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(LIBS)

# the bench's canned backend and its TTFB / connection-holding client: libc only
$(BUILD)/bench-%: tests/bench/%.c | $(BUILD)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $<

$(STANDIN): tests/standin/standin.c | $(BUILD)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(shell pkg-config --libs libevent libcjson 2>/dev/null)

$(BUILD) $(BUILD)/obj $(BUILD)/tests:
	mkdir -p $@

run: deps
	@$(MAKE) --no-print-directory all
	@tests/run-standin.sh $(BUILD) "$(UPSTREAM)"

test: deps
	@$(MAKE) --no-print-directory all $(UNIT_BINS)
	@tests/run-all.sh $(BUILD)

# What validation and retry do to violations and latency, then an A/B
# experiment (control, rules, rules-retry, model) and its `cairn report`
# (text, and the HTML page in $(BUILD)/demo-report.html), on the simulated
# disobedient stand-in backend (DEMO_ARGS: see tests/demo/run.py).
demo: deps
	@$(MAKE) --no-print-directory all
	@tests/demo/run.py --build $(BUILD) $(DEMO_ARGS)

# The load generator and the reference proxy (and ps, which the bench reads
# process trees with), installed for `make bench` only (not in DEB_TOOLS:
# `make test` does not need them). Debian's nginx package has the proxy
# module and upstream keep-alive; no recommends.
BENCH_DEB := wrk nginx procps
.PHONY: bench-deps
bench-deps:
	@if ! command -v wrk >/dev/null || ! command -v ps >/dev/null || \
	    ! { command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; }; then \
	  echo "bench: installing $(BENCH_DEB)"; \
	  apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(BENCH_DEB); \
	fi

# BENCH_SECONDS, BENCH_CONNECTIONS, BENCH_MODES, ...: see tests/bench/run.sh
bench: deps bench-deps
	@$(MAKE) --no-print-directory all $(MARKER_BENCH) $(BENCH_BINS)
	@tests/bench/run.sh $(BUILD)

clean:
	rm -rf build
