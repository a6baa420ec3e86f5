# ngx_http_session_module — build, test, demo and benchmark entry points.
# `make` bootstraps Debian packages, fetches the nginx source through apt-get source and builds
# build/sbin/nginx with this module compiled in.

SHELL := /bin/bash
ROOT := $(CURDIR)
BUILD := $(ROOT)/build
NGINX_VERSION ?= $(shell dpkg-query -W -f='$${Version}' nginx-common 2>/dev/null | sed 's/-.*//' | grep . || echo 1.22.1)
NGINX_SRC := $(BUILD)/src/nginx-$(NGINX_VERSION)
NGINX_BIN := $(BUILD)/sbin/nginx
PYTHON := /usr/bin/python3
CXX ?= g++

CORE_SRCS := $(addprefix src/core/,$(shell cat src/core/SOURCES))
GLUE_SRCS := $(wildcard src/*.cpp src/*.h src/core/*.h) config config.make
UNIT_SRCS := $(wildcard t/unit/*.cpp)
UNIT_BIN := $(BUILD)/unit/session_unit_tests
UNIT_CXXFLAGS := -std=c++17 -O1 -g -Wall -Wextra -Werror -Wno-unused-parameter -Isrc/core
UNIT_LIBS := -lgtest -lgtest_main -lssl -lcrypto -lcrypt -pthread

.PHONY: all bootstrap nginx dynamic unit test test-integration demo demo-stop bench clean

all: nginx

bootstrap:
	@scripts/bootstrap.sh

$(BUILD)/.bootstrap: scripts/bootstrap.sh
	@scripts/bootstrap.sh
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

unit: $(UNIT_BIN)
	$(UNIT_BIN) --gtest_brief=1

$(UNIT_BIN): $(CORE_SRCS) $(UNIT_SRCS) $(wildcard src/core/*.h t/unit/*.h)
	@mkdir -p $(dir $@)
	$(CXX) $(UNIT_CXXFLAGS) -o $@ $(CORE_SRCS) $(UNIT_SRCS) $(UNIT_LIBS)

test-integration: nginx dynamic
	$(PYTHON) -m pytest -q t

test: $(BUILD)/.bootstrap unit test-integration

demo: nginx
	scripts/demo.sh start

demo-stop:
	scripts/demo.sh stop

bench: nginx
	scripts/bench.sh

clean:
	rm -rf $(BUILD)
