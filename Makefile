# ngx_http_session_module — build, test, demo and benchmark entry points.
# `make` bootstraps Debian packages, fetches the nginx source through apt-get source and builds
# build/sbin/nginx with this module compiled in.

SHELL := /bin/bash
ROOT := $(CURDIR)
BUILD ?= $(ROOT)/build
NGINX_VERSION ?= $(shell dpkg-query -W -f='$${Version}' nginx-common 2>/dev/null | sed 's/-.*//' | grep . || echo 1.22.1)
NGINX_SRC := $(BUILD)/src/nginx-$(NGINX_VERSION)
NGINX_BIN := $(BUILD)/sbin/nginx
PYTHON := /usr/bin/python3
CXX ?= g++

CORE_SRCS := $(addprefix src/core/,$(shell cat src/core/SOURCES))
GLUE_SRCS := $(wildcard src/*.cpp src/*.h src/core/*.h src/redis/*.cpp src/redis/*.h) config config.make
UNIT_SRCS := $(wildcard t/unit/*.cpp)
UNIT_BIN := $(BUILD)/unit/session_unit_tests
UNIT_CXXFLAGS := -std=c++17 -O1 -g -Wall -Wextra -Werror -Wno-unused-parameter -Isrc/core
UNIT_LIBS := -lgtest -lgtest_main -lssl -lcrypto -lcrypt -lz -lmsgpackc -pthread

.PHONY: all bootstrap nginx dynamic deb unit test test-integration check-clang test-nginx-next \
	fuzz test-asan valgrind \
	demo demo-stop bench clean

# Extra Debian packages for the test suite: Chromium for the browser test, clang/libFuzzer.
BOOTSTRAP_EXTRA ?=
FUZZ_TIME ?= 60
TEST_FUZZ_TIME ?= 10

all: nginx

bootstrap:
	@BOOTSTRAP_EXTRA="$(BOOTSTRAP_EXTRA)" scripts/bootstrap.sh

$(BUILD)/.bootstrap: scripts/bootstrap.sh
	@BOOTSTRAP_EXTRA="$(BOOTSTRAP_EXTRA)" scripts/bootstrap.sh
	@mkdir -p $(BUILD) && touch $@

nginx: $(BUILD)/.bootstrap $(NGINX_BIN)

$(NGINX_SRC)/configure: $(BUILD)/.bootstrap scripts/fetch-nginx.sh
	scripts/fetch-nginx.sh $(NGINX_VERSION) $(BUILD)/src
	@touch $@

$(NGINX_SRC)/Makefile: $(NGINX_SRC)/configure config config.make src/core/SOURCES
	cd $(NGINX_SRC) && ./configure --prefix=$(BUILD) \
	  --with-debug --with-threads --with-http_ssl_module --with-http_auth_request_module \
	  --with-http_stub_status_module --add-module=$(ROOT) $(NGINX_CONFIGURE_EXTRA)

$(NGINX_BIN): $(NGINX_SRC)/Makefile $(CORE_SRCS) $(GLUE_SRCS)
	$(MAKE) -C $(NGINX_SRC) -j$$(nproc)
	$(MAKE) -C $(NGINX_SRC) install >/dev/null
	@$(NGINX_BIN) -V 2>&1 | head -1

dynamic: $(BUILD)/.bootstrap
	scripts/build-dynamic.sh $(BUILD)

# The Debian package of the dynamic module (debhelper + dh_nginx from nginx-dev), under
# build/deb/: libnginx-mod-http-session_<version>_<arch>.deb (and its -dbgsym). Rebuilt when the
# module's sources or debian/ change.
DEB_PACKAGE := libnginx-mod-http-session
DEB_VERSION := $(shell dpkg-parsechangelog -l debian/changelog -S Version 2>/dev/null)
DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null)
DEB_FILE := $(BUILD)/deb/$(DEB_PACKAGE)_$(DEB_VERSION)_$(DEB_ARCH).deb

deb: $(BUILD)/.bootstrap $(DEB_FILE)

$(DEB_FILE): $(CORE_SRCS) $(GLUE_SRCS) $(wildcard debian/* debian/source/*) README.md \
		scripts/build-deb.sh
	scripts/build-deb.sh $(BUILD)

unit: $(UNIT_BIN)
	$(UNIT_BIN) --gtest_brief=1

$(UNIT_BIN): $(CORE_SRCS) $(UNIT_SRCS) $(wildcard src/core/*.h t/unit/*.h)
	@mkdir -p $(dir $@)
	$(CXX) $(UNIT_CXXFLAGS) -o $@ $(CORE_SRCS) $(UNIT_SRCS) $(UNIT_LIBS)

# The v2 record scripts (src/core/record.cpp), exactly as the C++ builds them, against a real
# redis-server on a free loopback port.
.PHONY: record-scripts-check
record-scripts-check: $(UNIT_BIN)
	$(PYTHON) t/unit/record_scripts_check.py $(UNIT_BIN)

test-integration: nginx dynamic deb
	$(PYTHON) -m pytest -q -p no:cacheprovider t

# The module must build warning-free (nginx's -Werror) with clang too.
check-clang: $(BUILD)/.bootstrap
	$(MAKE) --no-print-directory BUILD=$(BUILD)/clang CC=clang $(BUILD)/clang/sbin/nginx

# Everything CI runs: packages, g++ and clang builds, unit tests, the Debian package, the
# integration suite against the static build and Debian's nginx with the dynamic module (and the
# package installed into it), and a short fuzzing pass.
test:
	@BOOTSTRAP_EXTRA="browser fuzz $(BOOTSTRAP_EXTRA)" scripts/bootstrap.sh
	@mkdir -p $(BUILD) && touch $(BUILD)/.bootstrap
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory check-clang
	$(MAKE) --no-print-directory test-integration
	$(MAKE) --no-print-directory fuzz FUZZ_TIME=$(TEST_FUZZ_TIME)

# The module against a newer nginx from Debian's next release (cookies are a linked list of
# headers since nginx 1.23): build it and run the cookie, login and Redis tests against it.
NGINX_NEXT ?= 1.26.3
test-nginx-next: $(BUILD)/.bootstrap
	$(MAKE) --no-print-directory NGINX_VERSION=$(NGINX_NEXT) BUILD=$(BUILD)/nginx-$(NGINX_NEXT) nginx
	NGINX_BIN=$(BUILD)/nginx-$(NGINX_NEXT)/sbin/nginx $(PYTHON) -m pytest -q -p no:cacheprovider \
	  t/test_cookie_store.py t/test_bad_cookies.py t/test_actions.py t/test_variables.py \
	  t/test_require.py t/test_login.py t/test_redis.py t/test_redis_records.py \
	  t/test_redis_tls.py t/test_redis_cluster.py

fuzz:
	@BOOTSTRAP_EXTRA=fuzz scripts/bootstrap.sh
	scripts/fuzz.sh $(FUZZ_TIME)

# nginx and the module with -fsanitize=address,undefined, then the integration suite against it;
# sanitizer reports from the workers fail the run.
test-asan: nginx
	@BOOTSTRAP_EXTRA="fuzz browser" scripts/bootstrap.sh
	scripts/asan-build.sh $(BUILD)/asan --pytest -q

valgrind: nginx
	@BOOTSTRAP_EXTRA=fuzz scripts/bootstrap.sh
	scripts/valgrind-run.sh

# make demo DEMO=cookie|redis|redis-tls|flask (scripts/demo.sh)
DEMO ?= cookie
demo: nginx
	scripts/demo.sh start $(DEMO)

demo-stop:
	scripts/demo.sh stop

bench: nginx
	scripts/bench.sh

clean:
	rm -rf $(BUILD)
