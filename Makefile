# cairn — build, test, run.
#
#   make deps    install missing build/test dependencies with apt-get
#   make         build build/cairn (and the test stand-in backend)
#   make run     deps + build + serve conf/cairn.json (with the stand-in
#                backend unless UPSTREAM=URL is given)
#   make test    deps + build + unit and integration tests
#   make test SANITIZE=1   the same under AddressSanitizer + UBSan
#   make bench   overhead of the gateway against the stand-in backend (wrk)
#   make demo    violation rate and latency with validation and retry, on a
#                simulated disobedient backend

VERSION  := 0.1.0
CC       ?= cc
PKGS     := libevent libcurl libcjson openssl libpcre2-8 libexttextcat expat cmocka
DEB_PKGS := pkg-config libevent-dev libcurl4-openssl-dev libcjson-dev libssl-dev \
            libpcre2-dev libexttextcat-dev libexpat1-dev libcmocka-dev python3 nodejs npm
# promtool, the Prometheus project's own parser, checks /metrics in the tests;
# its package's recommendations (node exporter, web assets) are not needed.
DEB_TOOLS := prometheus

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

.PHONY: all deps run test unit integration bench demo clean
all: $(BUILD)/cairn $(STANDIN)

deps:
	@missing=""; \
	for p in $(PKGS); do pkg-config --exists $$p 2>/dev/null || missing=1; done; \
	for c in python3 node npm promtool; do command -v $$c >/dev/null || missing=1; done; \
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

# What validation and retry do to violations and latency, on the simulated
# disobedient stand-in backend (DEMO_ARGS: see tests/demo/run.py).
demo: deps
	@$(MAKE) --no-print-directory all
	@tests/demo/run.py --build $(BUILD) $(DEMO_ARGS)

bench: deps
	@$(MAKE) --no-print-directory all $(MARKER_BENCH)
	@$(MARKER_BENCH) rules
	@tests/bench/run.sh $(BUILD)

clean:
	rm -rf build
