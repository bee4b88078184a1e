# The two commands of the README. Each installs what is missing (Debian
# packages, as root), configures, builds into build/ and runs.
#   make test   every test through CTest
#   make run    mslab-bench with its default suite
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
# libabsl-dev, libjudy-dev: mslab-xarray-bench baselines; gnuplot-nox: mslab-bench --plot.
DEB_PACKAGES = cmake g++ make pkg-config liburcu-dev libboost-dev doctest-dev \
               libmimalloc-dev libjemalloc-dev libbenchmark-dev clang-14 libclang-rt-14-dev \
               libabsl-dev libjudy-dev gnuplot-nox python3 git sqlite3

.PHONY: test run deps configure build clean

test: build
	cd $(BUILD) && ctest --output-on-failure --timeout 900 -j $(JOBS)

run: build
	$(BUILD)/bench/mslab-bench $(ARGS)

build: configure
	cmake --build $(BUILD) -j $(JOBS)

configure: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

# apt-get only when a package is missing, so a ready machine needs no network.
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

clean:
	rm -rf $(BUILD)
