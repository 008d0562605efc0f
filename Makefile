# kiln - top-level build.
#
# `make` builds build/libkiln.a and build/kiln.  `make run` starts the demo,
# `make test` runs every test (unit, unit under ASan+UBSan, conformance),
# `make bench` the benchmarks against the peer, `make fuzz` the fuzzers.
# Each of them first installs missing Debian packages (target `deps`).
#
# Sources are found by wildcard: a new .c file under src/ joins libkiln.a,
# a new tests/unit/test_*.c becomes a unit test program.  Files named
# *_avx2.c / *_avx512.c are compiled with those instruction sets enabled and
# must only be called after a run-time CPU check.

PYTHON    := /usr/bin/python3
CC        := gcc
CLANG     := clang
BUILD     := build

# Every Debian package the build, the tests, the demo and the benchmarks need.
PKGS := gcc make clang libclang-rt-14-dev python3 python3-onnx python3-numpy \
        libonnx-testdata libjansson-dev libevent-dev libsqlite3-dev libyaml-dev \
        libncurses-dev pkg-config prometheus curl sqlite3 \
        prometheus-alertmanager chromium tmux wrk nginx-light

WARN      := -Wall -Wextra -Werror -Wno-unused-parameter -Wno-format-truncation
CSTD      := -std=c11 -D_GNU_SOURCE
INCLUDES  := -Iinclude -Isrc
OPT       ?= -O2 -g
DEPFLAGS  := -MMD -MP
CFLAGS_ALL = $(CSTD) $(WARN) $(INCLUDES) $(OPT) $(DEPFLAGS) -pthread -fPIC
LIBS      := -lm -ldl -lpthread -ljansson -levent -levent_pthreads -lsqlite3 -lyaml -lncursesw

SAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer

LIB_SRC   := $(shell find src -name '*.c' -not -path 'src/cli/*' | sort)
CLI_SRC   := $(sort $(wildcard src/cli/*.c))
UNIT_SRC  := $(sort $(wildcard tests/unit/test_*.c))
UNIT_HELPERS := $(filter-out $(UNIT_SRC),$(wildcard tests/unit/*.c))

LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ   := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
SAN_LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/asan/%.o)
SAN_UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/asan/tests/%)

.PHONY: all deps run test unit unit-asan conformance bench bench-serve bench-models bench-monitor fuzz clean examples

all: $(BUILD)/kiln $(BUILD)/libkiln.a examples $(BUILD)/dashboard/.stamp

# Installs what is missing; a machine that has everything runs no apt-get.
# npm counts as present when the command exists: NodeSource's nodejs package
# bundles npm and conflicts with Debian's, so apt must not be asked for it.
deps:
	@missing=""; for p in $(PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	command -v npm >/dev/null 2>&1 || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null || \
	  { echo "apt-get install failed for:$$missing" >&2; exit 1; }; \
	fi

# Per-file instruction-set flags for run-time dispatched kernels.
isa_flags = $(if $(findstring _avx512,$1),-mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mavx2,$(if $(findstring _avx2,$1),-mavx2 -mfma -mf16c,))

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS_ALL) $(call isa_flags,$<) -c $< -o $@

$(BUILD)/asan/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC-SAN  $<"
	@$(CC) $(CSTD) $(WARN) $(INCLUDES) $(DEPFLAGS) -pthread $(SAN_FLAGS) $(call isa_flags,$<) -c $< -o $@

$(BUILD)/libkiln.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@rm -f $@ && ar rcs $@ $^

$(BUILD)/asan/libkiln.a: $(SAN_LIB_OBJ)
	@rm -f $@ && ar rcs $@ $^

$(BUILD)/kiln: $(CLI_OBJ) $(BUILD)/libkiln.a
	$(CC) $(OPT) -pthread -o $@ $(CLI_OBJ) $(BUILD)/libkiln.a $(LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(UNIT_HELPERS) $(BUILD)/libkiln.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itests/unit -o $@ $< $(UNIT_HELPERS) $(BUILD)/libkiln.a $(LIBS)

$(BUILD)/asan/tests/%: tests/unit/%.c $(UNIT_HELPERS) $(BUILD)/asan/libkiln.a
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(INCLUDES) -Itests/unit -pthread $(SAN_FLAGS) -o $@ $< $(UNIT_HELPERS) $(BUILD)/asan/libkiln.a $(LIBS)

# Stand-ins for libnvidia-ml.so.1 used by the monitoring tests (loaded via
# KILN_NVML_LIBRARY): versioned symbols, and the old unversioned API.
FAKE_NVML := $(BUILD)/tests/libfake_nvml.so $(BUILD)/tests/libfake_nvml_old.so

$(BUILD)/tests/libfake_nvml.so: tests/fake_nvml/fake_nvml.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) -O2 -g -fPIC -shared -o $@ $<

$(BUILD)/tests/libfake_nvml_old.so: tests/fake_nvml/fake_nvml.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) -O2 -g -fPIC -shared -DFAKE_NVML_OLD_API -o $@ $<


EXAMPLE_BIN := $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))

# The monitoring history benchmark helper (bench/monitor_bench.sh runs it).
$(BUILD)/bench/monitor_store_bench: bench/monitor_store_bench.c $(BUILD)/libkiln.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(BUILD)/libkiln.a $(LIBS)

examples: $(EXAMPLE_BIN)

$(BUILD)/examples/%: examples/%.c $(BUILD)/libkiln.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(BUILD)/libkiln.a $(LIBS)

# The dashboard's front end: web/ holds the page, its script and style and a
# package.json for uPlot (and playwright-core, for the dashboard test).  npm
# install runs when web/node_modules is missing or package.json changed; the
# assets are copied next to the binary, where kiln serves them from.
DASH_SRC    := web/dashboard.html web/dashboard.js web/dashboard.css
UPLOT_DIST  := web/node_modules/uplot/dist

web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	cd web && npm install --no-audit --no-fund --loglevel=error
	@touch $@

$(BUILD)/dashboard/.stamp: $(DASH_SRC) web/node_modules/.package-lock.json
	@mkdir -p $(BUILD)/dashboard
	cp $(DASH_SRC) $(UPLOT_DIST)/uPlot.iife.min.js $(UPLOT_DIST)/uPlot.min.css $(BUILD)/dashboard/
	@touch $@

# Small models generated at build time (never committed), and the demo
# model repository that `make run` serves.
$(BUILD)/models/.stamp: tools/make_demo_models.py tools/make_demo_repository.py
	@mkdir -p $(BUILD)/models
	$(PYTHON) tools/make_demo_models.py $(BUILD)/models
	$(PYTHON) tools/make_demo_repository.py $(BUILD)/models
	@touch $@

DEMO_PORT ?= 8000
DEMO_METRICS_PORT ?= 8002
run: deps all $(BUILD)/models/.stamp
	./$(BUILD)/kiln run $(BUILD)/models/demo_mlp.onnx --input input=$(BUILD)/models/demo_mlp_input.npy
	@echo
	@echo "Serving $(BUILD)/models/repository (Ctrl-C stops). Try:"
	@echo "  curl -s localhost:$(DEMO_PORT)/v2/models/demo_mlp"
	@echo "  curl -s -X POST localhost:$(DEMO_PORT)/v2/models/demo_mlp/infer -d '{\"inputs\":[{\"name\":\"input\",\"shape\":[1,16],\"datatype\":\"FP32\",\"data\":[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]}]}'"
	@echo "  curl -s localhost:$(DEMO_METRICS_PORT)/metrics | grep nv_inference"
	@echo "  open http://127.0.0.1:$(DEMO_METRICS_PORT)/dashboard"
	@echo
	./$(BUILD)/kiln serve --model-repository $(BUILD)/models/repository --http-port $(DEMO_PORT) --metrics-port $(DEMO_METRICS_PORT)

unit: all $(UNIT_BIN) $(FAKE_NVML) $(BUILD)/models/.stamp
unit-asan: $(SAN_UNIT_BIN) $(FAKE_NVML)

test: deps
	$(MAKE) all unit unit-asan $(BUILD)/models/.stamp
	tests/run_all.sh

conformance: all
	./$(BUILD)/kiln conformance /usr/share/libonnx-testdata/data/node /usr/share/libonnx-testdata/data/pytorch-converted /usr/share/libonnx-testdata/data/pytorch-operator /usr/share/libonnx-testdata/data/simple

# Benchmark models (ResNet-50, MobileNetV2, BERT-base) at fixed seeds, with
# ONNX Runtime's outputs as the expected ones; never committed.
BENCH_MODELS := $(BUILD)/bench_models
$(BENCH_MODELS)/.stamp: bench/models/make_models.py bench/peer/make_expected.js bench/peer/package.json
	@mkdir -p $(BENCH_MODELS)
	$(PYTHON) bench/models/make_models.py $(BENCH_MODELS)
	cd bench/peer && npm install --ignore-scripts --no-audit --no-fund --loglevel=error
	node bench/peer/make_expected.js $(BENCH_MODELS)/resnet50 $(BENCH_MODELS)/mobilenetv2 $(BENCH_MODELS)/bert
	@touch $@

bench-models: $(BENCH_MODELS)/.stamp

bench: deps all $(BENCH_MODELS)/.stamp
	bench/run_bench.sh

bench-serve: deps all $(BENCH_MODELS)/.stamp
	bench/serve_bench.sh

# The monitoring plane alone (writes the "## Monitoring" section of docs/PERFORMANCE.md).
bench-monitor: deps all
	bench/monitor_bench.sh

fuzz: deps
	tests/fuzz/run_fuzz.sh $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD)

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(SAN_LIB_OBJ:.o=.d)
