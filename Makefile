# The two promises: `make demo` and `make test`, on a fresh Debian/Ubuntu machine or a Jetson.
# Each installs what it needs: the Debian packages (scripts/debian-packages.sh, apt-get as root
# or through sudo, only what is missing), then the venv.
VENV ?= .venv
PY := $(VENV)/bin/python
SYSTEM_PYTHON ?= /usr/bin/python3

.PHONY: demo test lint check deps toolchain homeassistant docs docs-check clean rehearse-arm64 \
        packages-demo packages-test packages-arm64

packages-demo:
	@sh scripts/debian-packages.sh demo
packages-test:
	@sh scripts/debian-packages.sh demo test
packages-arm64:
	@sh scripts/debian-packages.sh arm64

# --system-site-packages: the system OpenCV (with GStreamer) and, on a Jetson, TensorRT's
# Python bindings are system packages; the venv must see them, not replace them.
$(VENV)/.installed: setup.cfg pyproject.toml constraints/select.sh | packages-demo
	$(SYSTEM_PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# A system OpenCV is built against one NumPy major version (JetPack's against 1.x): keep pip
	# from putting the other one in the venv. constraints/ has one file per Jetson target.
	sh constraints/select.sh $(SYSTEM_PYTHON) > $(VENV)/constraints.txt
	$(PY) -c "import cv2" 2>/dev/null || $(PY) -m pip install -q -e ".[opencv]" -c $(VENV)/constraints.txt
	$(PY) -m pip install -q -e ".[test,docs]" -c $(VENV)/constraints.txt
	touch $@

# torch, torchvision and timm for `edgeswin export` and its tests: several GB, so a target of
# their own (`make demo` does not need them; the daemon never imports them).
$(VENV)/.toolchain: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[toolchain]" -c $(VENV)/constraints.txt
	touch $@

deps: $(VENV)/.installed

toolchain: $(VENV)/.toolchain

# Home Assistant core in a venv of its own (its pins clash with the daemon's), for the tests
# that run edgeswin against a real Home Assistant. About 700 MB; made once.
HA_VENV ?= .venv-ha
$(HA_VENV)/.installed: scripts/homeassistant-venv.sh
	sh scripts/homeassistant-venv.sh $(SYSTEM_PYTHON) $(HA_VENV)
	touch $@

homeassistant: $(HA_VENV)/.installed

# The demo config and its videos are found from the package: `edgeswin demo` runs anywhere.
demo: deps
	$(PY) -m edgeswin demo

check: deps
	$(PY) -m edgeswin demo --prepare

lint: deps
	$(VENV)/bin/ruff check edgeswin tests models benchmarks docs

# The documentation site in build/site: the pages generated from the code first
# (docs/gen_reference.py), then a strict build (a broken link or anchor, or a page missing from
# the nav, fails). docs-check fails instead when a generated page is out of date.
docs: deps
	$(PY) docs/gen_reference.py
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -q

docs-check: deps
	$(PY) docs/gen_reference.py --check
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -q

test: packages-test deps toolchain homeassistant
	$(VENV)/bin/ruff check edgeswin tests models benchmarks docs
	$(MAKE) docs-check
	$(PY) -m pytest -q

# The README's Jetson install on an emulated arm64 Debian root (root, qemu-user-static,
# debootstrap; a few minutes, most of it the first debootstrap). .ci/run runs it.
rehearse-arm64: packages-arm64 deps
	bash tests/arm64_rehearsal.sh

clean:
	rm -rf build $(VENV) $(HA_VENV) *.egg-info
