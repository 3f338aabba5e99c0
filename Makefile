# Entry points for people and CI. `make up` and `make test` work on a fresh Debian 12
# machine: both install what they need first (scripts/install-deps.sh).
JOBS ?= $(shell nproc)
BUILD ?= build
CTEST_FLAGS ?= --output-on-failure

.PHONY: all deps build build-asan build-fuzz up down test test-unit test-asan test-fuzz bench format format-check clean node-deps bench-parquet bench-lake bench-storage

all: build

deps:
	./scripts/install-deps.sh

$(BUILD)/Makefile:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSLUICE_SANITIZE=ON
	cmake --build build-asan -j $(JOBS)

build-fuzz: deps
	CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DSLUICE_FUZZ=ON
	cmake --build build-fuzz -j $(JOBS) --target fuzz_targets

# Build and run sluice with every default (embedded log under ./var), printing its URLs.
# Without SLUICE_PG, a local PostgreSQL in ./var/pg is the hot store (`make down` stops it).
up: build
	mkdir -p var
	if [ -z "$${SLUICE_PG:-}" ]; then ./scripts/pg-local.sh start; fi
	SLUICE_PG="$${SLUICE_PG:-$$(./scripts/pg-local.sh uri)}" exec ./$(BUILD)/sluice serve

down:
	./scripts/pg-local.sh stop

# The Parquet tests' independent readers (DuckDB, hyparquet), exactly as the committed lock
# file lists them (it names DuckDB's bindings for every platform, so `npm ci` accepts it).
node-deps:
	cd tests/node && npm ci --no-audit --no-fund

# Every test: the release build, the whole suite again under ASan+UBSan, and the fuzz
# targets replaying their seed corpora plus a short fresh run.
test: format-check build build-asan build-fuzz node-deps
	cd $(BUILD) && ctest $(CTEST_FLAGS) -j 2
	cd build-asan && ctest $(CTEST_FLAGS) -j 2
	cd build-fuzz && ctest $(CTEST_FLAGS) -R '^fuzz_'

bench: build
	./bench/ingest.sh

# sluice's Parquet writer against DuckDB's COPY, one thread each (docs/benchmarks.md).
bench-parquet: build node-deps
	./bench/parquet.sh

# The lake sink's throughput beside DuckDB turning the same events into Parquet.
bench-lake: build node-deps
	./bench/lake.sh
# Storage writes to S3 (moto_server) beside the local disk (docs/benchmarks.md).
bench-storage: build
	./bench/storage.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

# Fails, naming the files, when C code is not as .clang-format lays it out (fix: make format).
format-check: deps
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-fuzz
