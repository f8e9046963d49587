# cairn — build, test, run.
#
#   make deps    install missing build/test dependencies with apt-get
#   make         build build/cairn (and the test stand-in backend)
#   make run     deps + build + serve conf/cairn.json (with the stand-in
#                backend unless UPSTREAM=URL is given)
#   make test    deps + build + unit and integration tests
#   make test SANITIZE=1   the same under AddressSanitizer + UBSan
#   make test-valgrind     a subset of the integration tests with the gateway
#                under valgrind memcheck (errors and definite leaks fail)
#   make bench   cairn against nginx proxy_pass and the bare backend (wrk),
#                with TTFB and memory; the table goes to build/bench.md
#   make fuzz    build the libFuzzer targets (clang) and run each for
#                FUZZ_SECONDS (30); FUZZ_TARGETS=... picks some (tests/fuzz/README.md)
#   make demo    violation rate and latency with validation and retry, on a
#                simulated disobedient backend

VERSION  := 0.1.0
CC       ?= cc
PKGS     := libevent libcurl libcjson openssl libpcre2-8 libexttextcat expat cmocka
DEB_PKGS := pkg-config libevent-dev libcurl4-openssl-dev libcjson-dev libssl-dev \
            libpcre2-dev libexttextcat-dev libexpat1-dev libcmocka-dev python3 nodejs npm \
            valgrind gdb
# promtool, the Prometheus project's own parser, checks /metrics in the tests;
# its package's recommendations (node exporter, web assets) are not needed.
# Headless chromium renders `cairn report --html` pages in the tests.
# clang and its libFuzzer runtime (in libclang-rt-14-dev on Debian 12, only
# recommended by clang) build `make fuzz`.
DEB_TOOLS := prometheus chromium clang libclang-rt-14-dev

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
# -z now: no lazy symbol binding, whose resolver spills the vector
# registers (which may hold a key a string function just read) onto the stack.
LDFLAGS  := $(SANFLAGS) -Wl,-z,now

SRCS     := $(wildcard proxy/*.c)
LIB_OBJS := $(patsubst proxy/%.c,$(BUILD)/obj/%.o,$(filter-out proxy/main.c,$(SRCS)))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
STANDIN  := $(BUILD)/cairn-standin
MARKER_BENCH := $(BUILD)/marker-bench
BENCH_BINS := $(BUILD)/bench-canned $(BUILD)/bench-client
FUZZ_ALL := http_parser chat_request sse marker_block config validate gateway
# The fuzz targets linked with tests/fuzz/replay.c: `make test` replays the
# committed corpora with them (tests/run-all.sh).
REPLAY_BINS := $(patsubst %,$(BUILD)/fuzz-replay/fuzz_%,$(FUZZ_ALL))

.PHONY: all deps run test test-valgrind unit integration bench demo fuzz clean
all: $(BUILD)/cairn $(STANDIN)

deps:
	@missing=""; \
	for p in $(PKGS); do pkg-config --exists $$p 2>/dev/null || missing=1; done; \
	for c in python3 node npm promtool chromium clang valgrind gcore; do command -v $$c >/dev/null || missing=1; done; \
	[ -f "$$(clang --print-runtime-dir 2>/dev/null)/libclang_rt.fuzzer-$$(uname -m).a" ] || missing=1; \
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

$(BUILD)/fuzz-replay/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c tests/fuzz/fuzz.h $(LIB_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< tests/fuzz/replay.c $(LIB_OBJS) $(LIBS)

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
	@$(MAKE) --no-print-directory all $(UNIT_BINS) $(REPLAY_BINS) $(BENCH_BINS)
	@tests/run-all.sh $(BUILD)

# Integration tests across the gateway's parts (HTTP framing, API, streams,
# upstream faults, tenants, markers, validation, workers), none relying on
# tight timing, with every gateway under valgrind memcheck (run.py
# --valgrind; forked workers are followed): any memcheck error or a
# definite leak fails the test. About 5 minutes on 2 cores.
VALGRIND_TESTS := \
  test_http::test_keepalive_serves_several_requests \
  test_http::test_pipelined_requests_answered_in_order_once \
  test_http::test_chunked_body_is_reassembled \
  test_http::test_header_block_over_header_bytes_is_431 \
  test_http::test_content_length_over_cap_is_413_without_reading_body \
  test_api::test_chat_is_proxied \
  test_api::test_client_credentials_and_hop_headers_not_forwarded \
  test_api::test_unknown_path_is_404 \
  test_api::test_json_rejects_too_deep \
  test_stream::test_stream_is_passed_through_byte_exact \
  test_stream::test_stream_upstream_closing_mid_stream_cuts_client \
  test_stream::test_client_disconnect_aborts_upstream_while_tokens_flow \
  test_stream::test_stream_echoing_the_key_across_chunks_is_cut \
  test_upstream::test_upstream_refusing_connections_is_502 \
  test_upstream::test_upstream_429_passes_through_with_retry_after \
  test_upstream::test_truncated_chunked_answer_is_502 \
  test_upstream::test_upstream_echoing_the_key_in_an_error_body_is_not_relayed \
  test_tenants::test_valid_keys_reach_upstream_and_log_their_tenant \
  test_tenants::test_every_bad_credential_gets_the_same_401 \
  test_tenants::test_models_list_is_filtered_and_other_model_is_403 \
  test_markers::test_markers_injected_tags_stripped_in_every_role_and_part \
  test_markers::test_markers_answer_block_removed_streamed \
  test_validation::test_validation_feedback_retry_fixes_a_too_long_answer \
  test_validation::test_validation_stream_buffer_replays_the_good_answer \
  test_workers::test_reload_reaches_every_worker \
  test_workers::test_sigterm_stops_every_worker

test-valgrind: deps
	@$(MAKE) --no-print-directory all
	@python3 tests/integration/run.py --build $(BUILD) --valgrind $(addprefix -k ,$(VALGRIND_TESTS))

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

# --- fuzzing (tests/fuzz/README.md) -----------------------------------------
# Each target is built with clang, libFuzzer, ASan and UBSan from library
# objects of its own (build/fuzz/obj, instrumented for coverage), then run
# for FUZZ_SECONDS on a scratch copy of its corpus plus the committed seeds.
# A crash fails the run and leaves its input in build/fuzz/crashes/<target>/.
FUZZ_TARGETS ?= $(FUZZ_ALL)
FUZZ_SECONDS ?= 30
FUZZ_CC    ?= clang
FUZZ_BUILD := build/fuzz
FUZZ_SAN   := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=c11 -O1 -g $(WARN) -Wno-unknown-warning-option $(FUZZ_SAN) -D_GNU_SOURCE \
            -DCAIRN_VERSION='"$(VERSION)"' -Iinclude $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZ_OBJS  := $(patsubst proxy/%.c,$(FUZZ_BUILD)/obj/%.o,$(filter-out proxy/main.c,$(SRCS)))

$(FUZZ_BUILD)/obj/%.o: proxy/%.c $(wildcard include/*.h)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJS) $(LIBS)

fuzz: deps
	@$(MAKE) --no-print-directory $(patsubst %,$(FUZZ_BUILD)/fuzz_%,$(FUZZ_TARGETS))
	@tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf build
