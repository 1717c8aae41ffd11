# tern — build, test, bench.   make | make test | make test SANITIZE=1 | make bench | make demo | make import-demo
#
# Layout: src/*.c src/*/*.c -> libtern.a (training library: HDF5, OpenBLAS, OpenMP)
#         src/ is grouped by concept: engine/ (tensors, graph, ops), model/ (config, model,
#         quantizers), training/ (trainer, loader, optimizer, schedule, eval, log), formats/
#         (GGUF, HDF5 checkpoints, token files, ternary packing), tokenizers/, kernels/,
#         dist/ (data-parallel training over Open MPI)
#         RT_SRC + infer/ non-program files -> libtern_rt.a (runtime: libc, libm, OpenMP only)
#         every train/ data/ infer/ file with 'int main(' is a program -> $(BUILD)/tern-<name>
#         tests/test_*.c -> $(BUILD)/tests/test_*  (cmocka)

CC      := gcc

# ---- target architecture (kernels, #17) ----------------------------------------------------
# ARCH = x86_64 or aarch64, the host's by default. Baseline x86-64-v2 so binaries run on any
# x86-64 of the last decade; ARMv8.0-A on AArch64. The vector kernels beyond the baseline (x86:
# AVX2, AVX-VNNI, AVX-512; ARM: dotprod, i8mm) are compiled per function (target attributes) and
# picked at run time. -ffp-contract=off on ARM: plain C float code rounds as written (no fused
# multiply-adds the x86 baseline lacks), so it gives the same bits on both.
# `make ARCH=aarch64` on an x86-64 host cross-builds only the standalone runtime (libc, libm,
# OpenMP: libtern_rt.a, tern-generate, tern-perplexity, tern-bench, tern-bench_kernels and the
# self-checking test driver tests/rtcheck) with Debian's aarch64-linux-gnu-gcc into
# build-aarch64/ (STATIC=1: statically linked, to copy onto a device: build-aarch64-static/;
# SANITIZE=1: build-aarch64-san/); `make test-arm` runs the runtime's tests under qemu-aarch64
# (scripts/test_arm.sh).
HOST_ARCH := $(shell uname -m)
ARCH      ?= $(HOST_ARCH)
CROSS     := 0
ifeq ($(ARCH),aarch64)
  ARCH_FLAGS := -march=armv8-a -ffp-contract=off
  ifneq ($(HOST_ARCH),aarch64)
    CROSS := 1
    CC    := aarch64-linux-gnu-gcc
    AR    := aarch64-linux-gnu-ar
    BUILD ?= build-aarch64$(if $(filter 1,$(SANITIZE)),-san)$(if $(filter 1,$(STATIC)),-static)
  endif
else ifeq ($(ARCH),x86_64)
  ARCH_FLAGS := -march=x86-64-v2 -mtune=generic
else
  $(error ARCH=$(ARCH): tern builds for x86_64 and aarch64)
endif
# ---- end target architecture

SANITIZE ?= 0
ifeq ($(SANITIZE),1)
  BUILD ?= build-san
  # float-cast-overflow: GCC's "undefined" leaves it out (clang's includes it); a NaN or infinite
  # value converted to an integer is the undefined behaviour a damaged model file reaches.
  # TERN_POISON_GRADS: fresh activation gradients start as NaN (engine/graph.h tern_grad_for)
  OPT   := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=undefined,float-cast-overflow \
           -DTERN_POISON_GRADS
else
  BUILD ?= build
  OPT   := -O3 -g
endif
CFLAGS  := -std=gnu11 $(OPT) $(ARCH_FLAGS) -fno-math-errno -fopenmp -Wall -Wextra -Werror -D_GNU_SOURCE -Isrc -Iinfer -MMD -MP
HDF5_CFLAGS = $(if $(filter 1,$(CROSS)),,$(shell pkg-config --cflags hdf5 2>/dev/null))
HDF5_LIBS   = $(shell pkg-config --libs hdf5 2>/dev/null)
# Open MPI (data-parallel training, src/dist/): flags from pkg-config (ompi-c), not the mpicc
# wrapper, so any $(CC) and the sanitizer build work alike. Only src/dist/*.c see <mpi.h>; training
# programs link libmpi but initialise MPI only when mpirun started them (src/dist/dist.h), so they
# also run as one plain process. The runtime library and infer/ programs never link it.
MPI_CFLAGS = $(shell pkg-config --cflags ompi-c 2>/dev/null)
MPI_LIBS   = $(shell pkg-config --libs ompi-c 2>/dev/null)
LDFLAGS := $(OPT) -fopenmp $(if $(filter 1,$(CROSS)),$(if $(filter 1,$(STATIC)),-static))
LIBS     = $(HDF5_LIBS) $(MPI_LIBS) -lopenblas -ljansson -lpcre2-8 -lm
RT_LIBS := -lm

# src/ files the standalone runtime also uses (must include only libc/libm/OpenMP headers)
RT_SRC_ALL := src/util.c src/model/quant.c src/kernels/vmath.c src/tokenizers/tokenizer.c src/formats/gguf.c \
              src/formats/tqpack.c src/formats/ggml_types.c src/kernels/kernels.c \
              src/kernels/qmatvec.c src/tokenizers/spm.c src/tokenizers/bytelevel.c \
              src/tokenizers/pretokenizer.c src/tokenizers/unicode.c src/tokenizers/tokenizer_gguf.c \
              src/tokenizers/nfc.c
RT_SRC_ALL += src/kernels/kernels_x86.c src/kernels/kernels_arm.c   # the vector tile kernels (empty on the other architecture)
RT_SRC     := $(wildcard $(RT_SRC_ALL))
LIB_SRC    := $(filter-out $(RT_SRC),$(wildcard src/*.c src/*/*.c))
LPAREN     := (
is_prog     = $(shell grep -l '^int main$(LPAREN)' $(1) 2>/dev/null)
INFER_ALL  := $(wildcard infer/*.c)
INFER_PROG := $(call is_prog,$(INFER_ALL))
INFER_LIB  := $(filter-out $(INFER_PROG),$(INFER_ALL))
TOOL_PROG  := $(call is_prog,$(wildcard train/*.c data/*.c))
TEST_SRC   := $(wildcard tests/test_*.c)
TEST_HELP  := $(filter-out $(TEST_SRC),$(wildcard tests/*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
LIBTERN    := $(BUILD)/libtern.a
LIBTERN_RT := $(BUILD)/libtern_rt.a
PROGS      := $(foreach p,$(INFER_PROG) $(TOOL_PROG),$(BUILD)/tern-$(basename $(notdir $(p))))
TESTS      := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
DEPS_STAMP := $(BUILD)/.deps-installed
ARM_PROGS  := $(addprefix $(BUILD)/tern-,generate perplexity bench bench_kernels)

OPENMP_ON := $(shell echo | $(CC) -fopenmp -dM -E - 2>/dev/null | grep -c _OPENMP)
$(info tern: OpenMP $(if $(filter 1,$(OPENMP_ON)),on,OFF) ($(shell nproc) CPUs here; threads from OMP_NUM_THREADS), build dir $(BUILD))

.PHONY: all test bench demo import-demo bench-import135m distill-wikitext interop interop-server deps clean unicode-tables test-arm mutate mutate-check coverage fuzz fuzz-smoke fuzz-build
.SECONDARY:
ifeq ($(CROSS),1)
all: $(LIBTERN_RT) $(ARM_PROGS) $(BUILD)/tests/rtcheck
else
all: $(LIBTERN) $(LIBTERN_RT) $(PROGS)
endif

deps: $(DEPS_STAMP)
$(DEPS_STAMP): scripts/install-deps.sh
	@mkdir -p $(@D)
	@scripts/install-deps.sh $(if $(filter 1,$(CROSS)),arm)
	@touch $@

$(BUILD)/obj/src/dist/%.o: EXTRA_CFLAGS = $(MPI_CFLAGS)
$(BUILD)/obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(HDF5_CFLAGS) $(EXTRA_CFLAGS) -c $< -o $@

# the logits kernels promise identical floats at every SIMD level: no fused multiply-adds there
$(BUILD)/obj/src/kernels/qmatvec.o: CFLAGS += -ffp-contract=off

$(LIBTERN): $(call obj,$(LIB_SRC))
	@rm -f $@
	$(AR) rcs $@ $^
$(LIBTERN_RT): $(call obj,$(RT_SRC) $(INFER_LIB))
	@rm -f $@
	$(AR) rcs $@ $^

# ---- ARM cross build and its tests under emulation (kernels, #17) --------------------------
# the runtime's self-checking test driver: libtern_rt only (no cmocka, which Debian does not
# ship for cross builds), so it runs wherever the runtime does, qemu-aarch64 included
$(BUILD)/tests/rtcheck: $(BUILD)/obj/tests/rtcheck/rtcheck.o $(LIBTERN_RT)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) $< $(LIBTERN_RT) $(RT_LIBS) -o $@
# make test-arm: the x86 build makes a tiny model and the reference figures, then every ARM
# kernel level runs the runtime's tests on an emulated CPU (scripts/test_arm.sh)
test-arm: all $(BUILD)/tests/rtcheck
	@scripts/install-deps.sh arm
	@$(MAKE) --no-print-directory ARCH=aarch64 BUILD=build-aarch64 SANITIZE=0
	@$(MAKE) --no-print-directory ARCH=aarch64 BUILD=build-aarch64-san SANITIZE=1 build-aarch64-san/tests/rtcheck
	@scripts/test_arm.sh $(BUILD) build-aarch64 build-aarch64-san
# ---- end ARM

# runtime programs: libc, libm, OpenMP only
$(BUILD)/tern-%: $(BUILD)/obj/infer/%.o $(LIBTERN_RT)
	$(CC) $(LDFLAGS) $< $(LIBTERN_RT) $(RT_LIBS) -o $@
$(BUILD)/tern-%: $(BUILD)/obj/train/%.o $(LIBTERN) $(LIBTERN_RT)
	$(CC) $(LDFLAGS) $< $(LIBTERN) $(LIBTERN_RT) $(LIBS) -o $@
$(BUILD)/tern-%: $(BUILD)/obj/data/%.o $(LIBTERN) $(LIBTERN_RT)
	$(CC) $(LDFLAGS) $< $(LIBTERN) $(LIBTERN_RT) $(LIBS) -o $@

# test_tokfile's scratch directory lies in its own build dir, so `make test` and `make test
# SANITIZE=1` can run at the same time
$(BUILD)/obj/tests/test_tokfile.o: EXTRA_CFLAGS = -DTEST_TMPD='"$(BUILD)/test_tokfile_tmp"'
$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(call obj,$(TEST_HELP)) $(LIBTERN) $(LIBTERN_RT)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) $< $(call obj,$(TEST_HELP)) $(TEST_EXTRA) $(LIBTERN) $(LIBTERN_RT) $(LIBS) -lcmocka -o $@

# ---- tern-server (infer/server/): the runtime library + GNU libmicrohttpd + jansson ---------------
# (the runtime library itself stays libc/libm/OpenMP; only these programs add the two libraries)
SERVER_ALL  := $(wildcard infer/server/*.c)
SERVER_PROG := $(call is_prog,$(SERVER_ALL))
SERVER_OBJ  := $(call obj,$(filter-out $(SERVER_PROG),$(SERVER_ALL)))
SERVER_LIBS := -lmicrohttpd -ljansson -lpthread
SERVER_BINS := $(foreach p,$(SERVER_PROG),$(BUILD)/tern-$(basename $(notdir $(p))))
ifneq ($(CROSS),1)   # a cross build makes only the standalone runtime (the HTTP/JSON libraries are the host's)
all: $(SERVER_BINS)
endif
$(SERVER_BINS): $(BUILD)/tern-%: $(BUILD)/obj/infer/server/%.o $(SERVER_OBJ) $(LIBTERN_RT)
	$(CC) $(LDFLAGS) $< $(SERVER_OBJ) $(LIBTERN_RT) $(SERVER_LIBS) $(RT_LIBS) -o $@
$(BUILD)/tests/test_server: $(SERVER_OBJ)
$(BUILD)/tests/test_server: TEST_EXTRA = $(SERVER_OBJ) $(SERVER_LIBS)

# Run every test binary from the repo root (output kept in $(BUILD)/tests/<name>.log); print one
# summary line with the count of loud skips ("tern-skip: ..." lines, tests/testutil.h TU_SKIP) and
# their reasons; fail if any binary failed. TERN_TEST_STRICT=1 turns every TU_SKIP into a failure.
test: all $(TESTS)
	@pass=0; fail=0; failed=""; skipped=0; \
	for t in $(TESTS); do \
	  echo "== $$t"; \
	  if OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $$t > $$t.log 2>&1; then pass=$$((pass+1)); else fail=$$((fail+1)); failed="$$failed $$t"; fi; \
	  cat $$t.log; \
	  skipped=$$((skipped + $$(grep -c '^tern-skip: ' $$t.log))); \
	done; \
	echo "test binaries: $$pass passed, $$fail failed; $$skipped skipped"; \
	for t in $(TESTS); do grep -h '^tern-skip: ' $$t.log; done | sed 's/^/  /'; \
	[ $$fail -eq 0 ] || { echo "FAILED:$$failed"; exit 1; }

bench: all
	@OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} scripts/bench.sh $(BUILD)

demo: all
	@scripts/install-deps.sh demo
	@scripts/demo.sh $(BUILD)

import-demo: all
	@scripts/install-deps.sh ref
	@scripts/import_demo.sh $(BUILD)

# a SmolLM-135M-shaped model end to end (import, 20-step fine-tune with a teacher, export, run), every figure
bench-import135m: all
	@scripts/install-deps.sh ref
	@scripts/bench_import135m.sh $(BUILD)

# ternary vs teacher on WikiText-2 (../shared/data): fine-tunes with and without distillation
distill-wikitext: all
	@scripts/install-deps.sh ref
	@scripts/distill_wikitext.sh $(BUILD)

interop: all
	@scripts/install-deps.sh interop
	@scripts/interop.sh $(BUILD)
	@scripts/server_interop.sh $(BUILD)

# tern-server alone against curl, the OpenAI client (npm) and tern-loadgen
interop-server: all
	@scripts/install-deps.sh interop
	@scripts/server_interop.sh $(BUILD)

# Regenerate the tokenizers' Unicode tables (committed; see the generators): the classes from
# PCRE2, then NFC's data from Python's unicodedata (which must have the same Unicode version)
unicode-tables: | $(DEPS_STAMP)
	@mkdir -p $(BUILD)
	$(CC) -O2 -Wall -Wextra -Werror scripts/gen_unicode_tables.c -lpcre2-8 -o $(BUILD)/gen_unicode_tables
	$(BUILD)/gen_unicode_tables src/tokenizers/unicode_tables.h
	python3 scripts/gen_nfc_tables.py src/tokenizers/nfc_tables.h src/tokenizers/unicode_tables.h

# Mutation testing (slow, not part of make test): tests/mutants/*.patch applied one at a time to a
# scratch copy in build-mutate/; MUTANTS="tests/mutants/a.patch ..." runs only those.
mutate:
	@scripts/mutate.sh $(MUTANTS)
# seconds: does every mutant still apply to the tree? (scripts/refresh_mutants.py rewrites stale ones)
mutate-check:
	@scripts/refresh_mutants.py --check

# Line and branch coverage of src/ and infer/ under make test's binaries (gcov/lcov, build-cov/).
coverage:
	@scripts/install-deps.sh coverage
	@scripts/coverage.sh

# ---- fuzzing (libFuzzer, clang): every tests/fuzz/fuzz_<target>.c defines LLVMFuzzerTestOneInput
# and is linked against the library sources built with -fsanitize=fuzzer-no-link,address,undefined
# in build-fuzz/. `make fuzz` runs each target FUZZ_SECONDS (default 60) from its committed seed
# corpus tests/fuzz/corpus/<target>/ (new inputs go to build-fuzz/corpus/<target>/, crashes to
# build-fuzz/artifacts/); FUZZ_TARGETS=gguf,config picks some; FUZZ_SEED=N repeats a run's random
# choices. `make fuzz-smoke`: 4 s each (CI).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_DIR     := build-fuzz
FUZZ_OPT     := -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS  := -std=gnu11 $(FUZZ_OPT) -fsanitize=fuzzer-no-link $(ARCH_FLAGS) -fno-math-errno -fopenmp -Wall -Wextra \
                -Wno-unknown-pragmas -D_GNU_SOURCE -DTERN_FUZZ -Isrc -Iinfer -MMD -MP
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES   := $(patsubst tests/fuzz/fuzz_%.c,%,$(FUZZ_SRC))
comma        := ,
FUZZ_PICK    := $(if $(FUZZ_TARGETS),$(subst $(comma), ,$(FUZZ_TARGETS)),$(FUZZ_NAMES))
FUZZ_BINS    := $(patsubst %,$(FUZZ_DIR)/fuzz_%,$(FUZZ_NAMES))
FUZZ_LIBOBJ  := $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(RT_SRC) $(LIB_SRC) $(INFER_LIB))

$(FUZZ_DIR)/.deps: scripts/install-deps.sh
	@mkdir -p $(@D)
	@scripts/install-deps.sh fuzz
	@touch $@
$(FUZZ_DIR)/obj/%.o: %.c | $(FUZZ_DIR)/.deps
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(HDF5_CFLAGS) $(if $(findstring src/dist/,$<),$(MPI_CFLAGS)) -c $< -o $@
$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIBOBJ) | $(FUZZ_DIR)/.deps
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(HDF5_CFLAGS) $< $(FUZZ_LIBOBJ) $(LIBS) -o $@

# tern-server's request parser: its server sources (no HTTP library needed) and jansson
FUZZ_SERVER_OBJ := $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,infer/server/api.c infer/server/text.c infer/server/chat.c)
$(FUZZ_DIR)/fuzz_server_request: tests/fuzz/fuzz_server_request.c $(FUZZ_LIBOBJ) $(FUZZ_SERVER_OBJ) | $(FUZZ_DIR)/.deps
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(HDF5_CFLAGS) $< $(FUZZ_SERVER_OBJ) $(FUZZ_LIBOBJ) $(LIBS) -o $@

fuzz-build: $(FUZZ_BINS)
fuzz: fuzz-build
	@scripts/fuzz.sh $(FUZZ_DIR) $(FUZZ_SECONDS) $(FUZZ_PICK)
# the smoke pass uses a fixed libFuzzer seed (FUZZ_SEED, default 1) so that CI repeats the same
# mutations from the committed seeds; `make fuzz` explores with a new seed each run
fuzz-smoke: fuzz-build
	@FUZZ_SEED=$(or $(FUZZ_SEED),1) scripts/fuzz.sh $(FUZZ_DIR) 4 $(FUZZ_PICK)

clean:
	rm -rf build build-san build-mutate build-cov build-fuzz build-aarch64 build-aarch64-static build-aarch64-san

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
ifneq ($(filter fuzz fuzz-smoke fuzz-build,$(MAKECMDGOALS)),)
-include $(shell find $(FUZZ_DIR) -name '*.d' 2>/dev/null)
endif
